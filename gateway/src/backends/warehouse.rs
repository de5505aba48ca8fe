//! The warehouse service over gRPC (volo-grpc; token and request id in the metadata).

use rpc_idl::warehouse::{
    Advertisement, CreateProductRequest, DeleteProductRequest, GetProductRequest, GetStockRequest,
    ListAdvertisementsRequest, ListProductsRequest, Product, ProductInput, SetStockAmountRequest,
    Stock, UpdateProductRequest, WarehouseServiceClient, WarehouseServiceClientBuilder,
};

use super::{
    Call, Idempotency, Link, WAREHOUSE_SERVICE,
    grpc::{GrpcBackend, service_client},
};
use crate::errors::BackendError;

/// The warehouse's client: [`GrpcBackend`] with the warehouse's methods.
pub type WarehouseBackend = GrpcBackend<WarehouseServiceClient>;

impl WarehouseBackend {
    pub(crate) fn new(link: Link) -> Self {
        let client = service_client(&link, WarehouseServiceClientBuilder::new("warehouse")).build();
        Self::from_parts(link, client, "warehouse", WAREHOUSE_SERVICE)
    }

    pub async fn list_products(&self, call: &Call) -> Result<Vec<Product>, BackendError> {
        let request = ListProductsRequest {};
        let response = self
            .invoke(
                "ListProducts",
                call,
                Idempotency::Read,
                request,
                |client, request| client.list_products(request),
            )
            .await?;
        Ok(response.products)
    }

    pub async fn get_product(&self, call: &Call, id: i64) -> Result<Product, BackendError> {
        let request = GetProductRequest { id };
        self.invoke(
            "GetProduct",
            call,
            Idempotency::Read,
            request,
            |client, request| client.get_product(request),
        )
        .await
    }

    pub async fn create_product(
        &self,
        call: &Call,
        product: ProductInput,
    ) -> Result<Product, BackendError> {
        let request = CreateProductRequest {
            product: Some(product),
        };
        self.invoke(
            "CreateProduct",
            call,
            Idempotency::Write,
            request,
            |client, request| client.create_product(request),
        )
        .await
    }

    pub async fn update_product(
        &self,
        call: &Call,
        id: i64,
        product: ProductInput,
    ) -> Result<Product, BackendError> {
        let request = UpdateProductRequest {
            id,
            product: Some(product),
        };
        self.invoke(
            "UpdateProduct",
            call,
            Idempotency::Write,
            request,
            |client, request| client.update_product(request),
        )
        .await
    }

    pub async fn delete_product(&self, call: &Call, id: i64) -> Result<(), BackendError> {
        let request = DeleteProductRequest { id };
        self.invoke(
            "DeleteProduct",
            call,
            Idempotency::Write,
            request,
            |client, request| client.delete_product(request),
        )
        .await
        .map(|_| ())
    }

    pub async fn get_stock(&self, call: &Call, product_id: i64) -> Result<Stock, BackendError> {
        let request = GetStockRequest { product_id };
        self.invoke(
            "GetStock",
            call,
            Idempotency::Read,
            request,
            |client, request| client.get_stock(request),
        )
        .await
    }

    pub async fn set_stock_amount(
        &self,
        call: &Call,
        product_id: i64,
        amount: i64,
    ) -> Result<Stock, BackendError> {
        let request = SetStockAmountRequest { product_id, amount };
        self.invoke(
            "SetStockAmount",
            call,
            Idempotency::Write,
            request,
            |client, request| client.set_stock_amount(request),
        )
        .await
    }

    pub async fn list_advertisements(
        &self,
        call: &Call,
    ) -> Result<Vec<Advertisement>, BackendError> {
        let request = ListAdvertisementsRequest {};
        let response = self
            .invoke(
                "ListAdvertisements",
                call,
                Idempotency::Read,
                request,
                |client, request| client.list_advertisements(request),
            )
            .await?;
        Ok(response.advertisements)
    }
}
