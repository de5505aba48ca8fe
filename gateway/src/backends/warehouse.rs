//! The warehouse service over gRPC (volo-grpc; token and request id in the metadata).

use std::time::Duration;

use rpc_idl::{
    grpc::health::v1::{
        HealthCheckRequest, HealthClient, HealthClientBuilder, health_check_response::ServingStatus,
    },
    warehouse::{
        Advertisement, CreateProductRequest, DeleteProductRequest, GetProductRequest,
        GetStockRequest, ListAdvertisementsRequest, ListProductsRequest, Product, ProductInput,
        SetStockAmountRequest, Stock, UpdateProductRequest, WarehouseServiceClient,
        WarehouseServiceClientBuilder,
    },
};

use volo::loadbalance::random::WeightedRandomBalance;

use super::{Call, Idempotency, Link, probe::ProbeLayer};
use crate::errors::BackendError;

#[derive(Clone)]
pub struct WarehouseBackend {
    link: Link,
    client: WarehouseServiceClient,
    health: HealthClient,
}

impl WarehouseBackend {
    pub(crate) fn new(link: Link) -> Self {
        let connect = link.rpc_timeout().min(Duration::from_secs(1));
        let client = WarehouseServiceClientBuilder::new("warehouse")
            .caller_name("gateway")
            .load_balance(WeightedRandomBalance::<()>::new())
            .discover(link.discover.clone())
            .connect_timeout(connect)
            .layer_inner(ProbeLayer)
            .build();
        let health = HealthClientBuilder::new("warehouse")
            .caller_name("gateway")
            .load_balance(WeightedRandomBalance::<()>::new())
            .discover(link.discover.clone())
            .connect_timeout(connect)
            .build();
        Self {
            link,
            client,
            health,
        }
    }

    pub async fn list_products(&self, call: &Call) -> Result<Vec<Product>, BackendError> {
        let response = self
            .link
            .invoke("ListProducts", call, Idempotency::Read, |deadline| {
                let request = call.metadata.grpc_request(ListProductsRequest {});
                self.link.grpc(deadline, self.client.list_products(request))
            })
            .await?;
        Ok(response.products)
    }

    pub async fn get_product(&self, call: &Call, id: i64) -> Result<Product, BackendError> {
        self.link
            .invoke("GetProduct", call, Idempotency::Read, |deadline| {
                let request = call.metadata.grpc_request(GetProductRequest { id });
                self.link.grpc(deadline, self.client.get_product(request))
            })
            .await
    }

    pub async fn create_product(
        &self,
        call: &Call,
        product: ProductInput,
    ) -> Result<Product, BackendError> {
        self.link
            .invoke("CreateProduct", call, Idempotency::Write, |deadline| {
                let request = call.metadata.grpc_request(CreateProductRequest {
                    product: Some(product.clone()),
                });
                self.link
                    .grpc(deadline, self.client.create_product(request))
            })
            .await
    }

    pub async fn update_product(
        &self,
        call: &Call,
        id: i64,
        product: ProductInput,
    ) -> Result<Product, BackendError> {
        self.link
            .invoke("UpdateProduct", call, Idempotency::Write, |deadline| {
                let request = call.metadata.grpc_request(UpdateProductRequest {
                    id,
                    product: Some(product.clone()),
                });
                self.link
                    .grpc(deadline, self.client.update_product(request))
            })
            .await
    }

    pub async fn delete_product(&self, call: &Call, id: i64) -> Result<(), BackendError> {
        self.link
            .invoke("DeleteProduct", call, Idempotency::Write, |deadline| {
                let request = call.metadata.grpc_request(DeleteProductRequest { id });
                self.link
                    .grpc(deadline, self.client.delete_product(request))
            })
            .await
            .map(|_| ())
    }

    pub async fn get_stock(&self, call: &Call, product_id: i64) -> Result<Stock, BackendError> {
        self.link
            .invoke("GetStock", call, Idempotency::Read, |deadline| {
                let request = call.metadata.grpc_request(GetStockRequest { product_id });
                self.link.grpc(deadline, self.client.get_stock(request))
            })
            .await
    }

    pub async fn set_stock_amount(
        &self,
        call: &Call,
        product_id: i64,
        amount: i64,
    ) -> Result<Stock, BackendError> {
        self.link
            .invoke("SetStockAmount", call, Idempotency::Write, |deadline| {
                let request = call
                    .metadata
                    .grpc_request(SetStockAmountRequest { product_id, amount });
                self.link
                    .grpc(deadline, self.client.set_stock_amount(request))
            })
            .await
    }

    pub async fn list_advertisements(
        &self,
        call: &Call,
    ) -> Result<Vec<Advertisement>, BackendError> {
        let response = self
            .link
            .invoke("ListAdvertisements", call, Idempotency::Read, |deadline| {
                let request = call.metadata.grpc_request(ListAdvertisementsRequest {});
                self.link
                    .grpc(deadline, self.client.list_advertisements(request))
            })
            .await?;
        Ok(response.advertisements)
    }

    /// Whether some instance reports SERVING on the standard health protocol.
    pub async fn healthy(&self) -> bool {
        self.link
            .healthy(|| async {
                let request = HealthCheckRequest {
                    service: crate::backends::WAREHOUSE_SERVICE.into(),
                };
                matches!(
                    self.health.check(request).await,
                    Ok(response) if response.get_ref().status == ServingStatus::SERVING
                )
            })
            .await
    }
}
