//! The bare Volo baselines: a Volo gRPC server answering `GetProduct` and a Volo Thrift server
//! answering `GetAccountByUsername` from memory, each with the same answer the real service
//! gives (fetched from it once, at start). No database, no token check, no span, no limits:
//! Volo's own `Server::run` on the address. What one call costs them is what the RPC stack
//! itself costs on this machine, the floor under the warehouse's and the account service's
//! reads; the report divides the services' CPU per call by theirs.

use std::net::SocketAddr;

use anyhow::Context;
use pilota::FastStr;
use platform::rpc_metadata::CallMetadata;
use rpc_idl::{
    account::{self, AccountService, AccountServiceServer},
    warehouse::{self, WarehouseService, WarehouseServiceServer},
};
use volo_grpc::{Request, Response, Status};
use volo_thrift::{MaybeException, ServerError};

use crate::targets::{account_client, warehouse_client};

/// Serves `GetProduct` with the product `id` that the warehouse at `warehouse` holds.
pub async fn serve_grpc(listen: SocketAddr, warehouse: SocketAddr, id: i64) -> anyhow::Result<()> {
    let product = warehouse_client(warehouse)
        .get_product(warehouse::GetProductRequest { id })
        .await
        .context("cannot read the product from the warehouse")?
        .into_inner();
    let service = WarehouseServiceServer::new(BareWarehouse { product });
    println!("bare Volo gRPC ready address={listen}");
    volo_grpc::server::Server::new()
        .add_service(volo_grpc::server::ServiceBuilder::new(service).build())
        .run(volo::net::Address::from(listen))
        .await
        .map_err(|e| anyhow::anyhow!("the bare gRPC server failed: {e}"))
}

/// Serves `GetAccountByUsername` (and `Ping`) with the account `username` that the account
/// service at `account` holds, read with `token`.
pub async fn serve_thrift(
    listen: SocketAddr,
    account: SocketAddr,
    token: String,
    username: String,
) -> anyhow::Result<()> {
    let metadata = CallMetadata {
        token: Some(token),
        request_id: None,
    };
    let request = account::GetAccountByUsernameRequest {
        username: FastStr::from(username),
        token: None,
    };
    let answer = metadata
        .thrift_call(account_client(account).get_account_by_username(request))
        .await
        .context("cannot read the account from the account service")?;
    let account = match answer {
        MaybeException::Ok(account) => account,
        MaybeException::Exception(refusal) => {
            anyhow::bail!("the account service refused the bare server's read: {refusal:?}")
        }
    };
    println!("bare Volo Thrift ready address={listen}");
    AccountServiceServer::new(BareAccount { account })
        .run(volo::net::Address::from(listen))
        .await
        .map_err(|e| anyhow::anyhow!("the bare Thrift server failed: {e}"))
}

struct BareWarehouse {
    product: warehouse::Product,
}

// The generated trait's own error type; boxing it would not fit the trait.
#[allow(clippy::result_large_err)]
fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "the bare baseline answers GetProduct only",
    ))
}

impl WarehouseService for BareWarehouse {
    async fn get_product(
        &self,
        _req: Request<warehouse::GetProductRequest>,
    ) -> Result<Response<warehouse::Product>, Status> {
        Ok(Response::new(self.product.clone()))
    }

    async fn list_products(
        &self,
        _req: Request<warehouse::ListProductsRequest>,
    ) -> Result<Response<warehouse::ListProductsResponse>, Status> {
        unimplemented()
    }

    async fn create_product(
        &self,
        _req: Request<warehouse::CreateProductRequest>,
    ) -> Result<Response<warehouse::Product>, Status> {
        unimplemented()
    }

    async fn update_product(
        &self,
        _req: Request<warehouse::UpdateProductRequest>,
    ) -> Result<Response<warehouse::Product>, Status> {
        unimplemented()
    }

    async fn delete_product(
        &self,
        _req: Request<warehouse::DeleteProductRequest>,
    ) -> Result<Response<warehouse::DeleteProductResponse>, Status> {
        unimplemented()
    }

    async fn get_stock(
        &self,
        _req: Request<warehouse::GetStockRequest>,
    ) -> Result<Response<warehouse::Stock>, Status> {
        unimplemented()
    }

    async fn set_stock_amount(
        &self,
        _req: Request<warehouse::SetStockAmountRequest>,
    ) -> Result<Response<warehouse::Stock>, Status> {
        unimplemented()
    }

    async fn list_advertisements(
        &self,
        _req: Request<warehouse::ListAdvertisementsRequest>,
    ) -> Result<Response<warehouse::ListAdvertisementsResponse>, Status> {
        unimplemented()
    }

    async fn reserve_stock(
        &self,
        _req: Request<warehouse::ReserveStockRequest>,
    ) -> Result<Response<warehouse::Reservation>, Status> {
        unimplemented()
    }

    async fn commit_reservation(
        &self,
        _req: Request<warehouse::ReservationRequest>,
    ) -> Result<Response<warehouse::Reservation>, Status> {
        unimplemented()
    }

    async fn release_reservation(
        &self,
        _req: Request<warehouse::ReservationRequest>,
    ) -> Result<Response<warehouse::Reservation>, Status> {
        unimplemented()
    }
}

struct BareAccount {
    account: account::Account,
}

fn refused() -> ServerError {
    ServerError::Application(volo_thrift::ApplicationException::new(
        volo_thrift::ApplicationExceptionKind::UNKNOWN_METHOD,
        "the bare baseline answers GetAccountByUsername and Ping only",
    ))
}

impl AccountService for BareAccount {
    async fn ping(&self, _req: account::PingRequest) -> Result<account::PingResponse, ServerError> {
        Ok(account::PingResponse {
            status: FastStr::from_static_str("SERVING"),
        })
    }

    async fn get_account_by_username(
        &self,
        _req: account::GetAccountByUsernameRequest,
    ) -> Result<
        MaybeException<account::Account, account::AccountServiceGetAccountByUsernameException>,
        ServerError,
    > {
        Ok(MaybeException::Ok(self.account.clone()))
    }

    async fn get_account_by_id(
        &self,
        _req: account::GetAccountByIdRequest,
    ) -> Result<
        MaybeException<account::Account, account::AccountServiceGetAccountByIdException>,
        ServerError,
    > {
        Err(refused())
    }

    async fn create_account(
        &self,
        _req: account::CreateAccountRequest,
    ) -> Result<
        MaybeException<account::Account, account::AccountServiceCreateAccountException>,
        ServerError,
    > {
        Err(refused())
    }

    async fn update_account(
        &self,
        _req: account::UpdateAccountRequest,
    ) -> Result<
        MaybeException<account::Account, account::AccountServiceUpdateAccountException>,
        ServerError,
    > {
        Err(refused())
    }

    async fn check_credentials(
        &self,
        _req: account::CheckCredentialsRequest,
    ) -> Result<
        MaybeException<account::Account, account::AccountServiceCheckCredentialsException>,
        ServerError,
    > {
        Err(refused())
    }
}
