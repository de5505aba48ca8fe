//! `warehouse.WarehouseService` on the wire: decodes requests, checks the caller's token,
//! calls the domain and store, and maps typed errors to gRPC statuses (the only place that does).

use platform::{database::Database, tokens::TokenVerifier};
use rpc_idl::warehouse::*;
use volo_grpc::{Request, Response, Status};

pub struct WarehouseRpc {
    #[allow(dead_code)]
    database: Database,
    #[allow(dead_code)]
    verifier: TokenVerifier,
}

impl WarehouseRpc {
    pub fn new(database: Database, verifier: TokenVerifier) -> Self {
        Self { database, verifier }
    }
}

fn not_yet() -> Status {
    Status::unimplemented("not implemented yet")
}

impl WarehouseService for WarehouseRpc {
    async fn list_products(
        &self,
        _req: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        Err(not_yet())
    }
    async fn get_product(
        &self,
        _req: Request<GetProductRequest>,
    ) -> Result<Response<Product>, Status> {
        Err(not_yet())
    }
    async fn create_product(
        &self,
        _req: Request<CreateProductRequest>,
    ) -> Result<Response<Product>, Status> {
        Err(not_yet())
    }
    async fn update_product(
        &self,
        _req: Request<UpdateProductRequest>,
    ) -> Result<Response<Product>, Status> {
        Err(not_yet())
    }
    async fn delete_product(
        &self,
        _req: Request<DeleteProductRequest>,
    ) -> Result<Response<DeleteProductResponse>, Status> {
        Err(not_yet())
    }
    async fn get_stock(&self, _req: Request<GetStockRequest>) -> Result<Response<Stock>, Status> {
        Err(not_yet())
    }
    async fn set_stock_amount(
        &self,
        _req: Request<SetStockAmountRequest>,
    ) -> Result<Response<Stock>, Status> {
        Err(not_yet())
    }
    async fn list_advertisements(
        &self,
        _req: Request<ListAdvertisementsRequest>,
    ) -> Result<Response<ListAdvertisementsResponse>, Status> {
        Err(not_yet())
    }
    async fn reserve_stock(
        &self,
        _req: Request<ReserveStockRequest>,
    ) -> Result<Response<Reservation>, Status> {
        Err(not_yet())
    }
    async fn commit_reservation(
        &self,
        _req: Request<ReservationRequest>,
    ) -> Result<Response<Reservation>, Status> {
        Err(not_yet())
    }
    async fn release_reservation(
        &self,
        _req: Request<ReservationRequest>,
    ) -> Result<Response<Reservation>, Status> {
        Err(not_yet())
    }
}
