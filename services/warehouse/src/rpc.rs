//! `warehouse.WarehouseService` on the wire: decodes requests, checks the caller's token,
//! calls the domain and store, and maps typed errors to gRPC statuses (the only place that does).

use std::future::Future;

use platform::{
    rpc_metadata::CallMetadata,
    tokens::{SCOPE_SERVICE, TokenVerifier},
};
use rpc_idl::warehouse as wire;
use tracing::Instrument;
use volo_grpc::{Request, Response, Status};

use crate::{
    domain::{
        Advertisement, PaymentId, Product, ProductDraft, ProductId, ProductUpdate, Reservation,
        ReservationState, Stock, StockChange, StockReservation, StorageFailure, UncheckedItem,
        UncheckedProduct, UncheckedSpecification, WarehouseError,
    },
    store::Store,
};

pub struct WarehouseRpc {
    store: Store,
    verifier: TokenVerifier,
}

/// Who may make a call.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone; a token, if sent, must still be valid.
    Public,
    /// A token with `ROLE_ADMIN`.
    Admin,
    /// A token with scope `SERVICE` (the payment service).
    Service,
}

impl WarehouseRpc {
    pub fn new(store: Store, verifier: TokenVerifier) -> Self {
        Self { store, verifier }
    }

    /// Opens the call's span and checks the caller; a refusal is logged once, here.
    fn admit<T>(
        &self,
        method: &'static str,
        req: &Request<T>,
        access: Access,
    ) -> Result<tracing::Span, Refusal> {
        let metadata = CallMetadata::from_grpc(req);
        let span = tracing::info_span!(
            "rpc",
            method,
            request_id = metadata.request_id.as_deref().unwrap_or("-")
        );
        if let Err(refusal) = authorize(&metadata, &self.verifier, access) {
            span.in_scope(|| tracing::info!(%refusal, "call refused"));
            return Err(refusal);
        }
        Ok(span)
    }
}

/// Why a caller may not make a call.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// No token where one is needed, or a token that does not verify.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token without the needed role or scope.
    #[error("{0}")]
    Forbidden(&'static str),
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthenticated(message) => Status::unauthenticated(message),
            Refusal::Forbidden(message) => Status::permission_denied(message),
        }
    }
}

fn authorize(
    metadata: &CallMetadata,
    verifier: &TokenVerifier,
    access: Access,
) -> Result<(), Refusal> {
    let caller = metadata
        .caller(verifier)
        .map_err(|error| Refusal::Unauthenticated(error.to_string()))?;
    let caller = match (access, caller) {
        (Access::Public, _) => return Ok(()),
        (_, None) => {
            return Err(Refusal::Unauthenticated(
                "authentication required".to_owned(),
            ));
        }
        (_, Some(caller)) => caller,
    };
    match access {
        Access::Admin if !caller.is_admin() => {
            Err(Refusal::Forbidden("this call needs ROLE_ADMIN"))
        }
        Access::Service if !caller.has_scope(SCOPE_SERVICE) => Err(Refusal::Forbidden(
            "this call needs a token with scope SERVICE",
        )),
        _ => Ok(()),
    }
}

/// Runs the call's work inside its span and turns the outcome into a gRPC answer.
async fn answer<R>(
    span: tracing::Span,
    work: impl Future<Output = Result<R, WarehouseError>>,
) -> Result<Response<R>, Status> {
    async move { work.await.map(Response::new).map_err(status) }
        .instrument(span)
        .await
}

/// The one mapping of warehouse errors to gRPC statuses. Storage details are logged, never sent.
fn status(error: WarehouseError) -> Status {
    match &error {
        WarehouseError::Invalid(errors) => platform::grpc_error_details::invalid_argument(errors),
        WarehouseError::ProductNotFound(_) | WarehouseError::ReservationNotFound(_) => {
            Status::not_found(error.to_string())
        }
        WarehouseError::InsufficientStock { .. }
        | WarehouseError::WrongState { .. }
        | WarehouseError::ReservationConflict(_) => Status::failed_precondition(error.to_string()),
        WarehouseError::Storage(StorageFailure::Unavailable(_)) => {
            tracing::warn!(%error, "database unavailable");
            Status::unavailable("the warehouse database is unavailable")
        }
        WarehouseError::Storage(StorageFailure::Failed(_)) => {
            tracing::error!(%error, "storage failure");
            Status::internal("internal error")
        }
    }
}

impl wire::WarehouseService for WarehouseRpc {
    async fn list_products(
        &self,
        req: Request<wire::ListProductsRequest>,
    ) -> Result<Response<wire::ListProductsResponse>, Status> {
        let span = self.admit("ListProducts", &req, Access::Public)?;
        answer(span, async {
            let products = self.store.list_products().await?;
            Ok(wire::ListProductsResponse {
                products: products.into_iter().map(product_to_wire).collect(),
            })
        })
        .await
    }

    async fn get_product(
        &self,
        req: Request<wire::GetProductRequest>,
    ) -> Result<Response<wire::Product>, Status> {
        let span = self.admit("GetProduct", &req, Access::Public)?;
        let id = req.into_inner().id;
        answer(span, async {
            let id = ProductId::parse("id", id)?;
            Ok(product_to_wire(self.store.product(id).await?))
        })
        .await
    }

    async fn create_product(
        &self,
        req: Request<wire::CreateProductRequest>,
    ) -> Result<Response<wire::Product>, Status> {
        let span = self.admit("CreateProduct", &req, Access::Admin)?;
        let input = req.into_inner().product.map(product_from_wire);
        answer(span, async {
            let draft = ProductDraft::parse_required(input)?;
            let product = self.store.create_product(&draft).await?;
            tracing::info!(product_id = product.id.get(), "product created");
            Ok(product_to_wire(product))
        })
        .await
    }

    async fn update_product(
        &self,
        req: Request<wire::UpdateProductRequest>,
    ) -> Result<Response<wire::Product>, Status> {
        let span = self.admit("UpdateProduct", &req, Access::Admin)?;
        let wire::UpdateProductRequest { id, product } = req.into_inner();
        let input = product.map(product_from_wire);
        answer(span, async {
            let update = ProductUpdate::parse(id, input)?;
            let product = self.store.update_product(update.id, &update.draft).await?;
            tracing::info!(product_id = product.id.get(), "product updated");
            Ok(product_to_wire(product))
        })
        .await
    }

    async fn delete_product(
        &self,
        req: Request<wire::DeleteProductRequest>,
    ) -> Result<Response<wire::DeleteProductResponse>, Status> {
        let span = self.admit("DeleteProduct", &req, Access::Admin)?;
        let id = req.into_inner().id;
        answer(span, async {
            let id = ProductId::parse("id", id)?;
            self.store.delete_product(id).await?;
            tracing::info!(product_id = id.get(), "product deleted");
            Ok(wire::DeleteProductResponse {})
        })
        .await
    }

    async fn get_stock(
        &self,
        req: Request<wire::GetStockRequest>,
    ) -> Result<Response<wire::Stock>, Status> {
        let span = self.admit("GetStock", &req, Access::Admin)?;
        let product_id = req.into_inner().product_id;
        answer(span, async {
            let product_id = ProductId::parse("product_id", product_id)?;
            Ok(stock_to_wire(self.store.stock(product_id).await?))
        })
        .await
    }

    async fn set_stock_amount(
        &self,
        req: Request<wire::SetStockAmountRequest>,
    ) -> Result<Response<wire::Stock>, Status> {
        let span = self.admit("SetStockAmount", &req, Access::Admin)?;
        let wire::SetStockAmountRequest { product_id, amount } = req.into_inner();
        answer(span, async {
            let change = StockChange::parse(product_id, amount)?;
            let stock = self
                .store
                .set_stock_amount(change.product_id, change.amount)
                .await?;
            tracing::info!(product_id, amount, "stock amount set");
            Ok(stock_to_wire(stock))
        })
        .await
    }

    async fn list_advertisements(
        &self,
        req: Request<wire::ListAdvertisementsRequest>,
    ) -> Result<Response<wire::ListAdvertisementsResponse>, Status> {
        let span = self.admit("ListAdvertisements", &req, Access::Public)?;
        answer(span, async {
            let advertisements = self.store.advertisements().await?;
            Ok(wire::ListAdvertisementsResponse {
                advertisements: advertisements
                    .into_iter()
                    .map(advertisement_to_wire)
                    .collect(),
            })
        })
        .await
    }

    async fn reserve_stock(
        &self,
        req: Request<wire::ReserveStockRequest>,
    ) -> Result<Response<wire::Reservation>, Status> {
        let span = self.admit("ReserveStock", &req, Access::Service)?;
        let wire::ReserveStockRequest { payment_id, items } = req.into_inner();
        let items: Vec<UncheckedItem> = items
            .iter()
            .map(|item| UncheckedItem {
                product_id: item.product_id,
                amount: item.amount,
            })
            .collect();
        answer(span, async {
            let request = StockReservation::parse(&payment_id, &items)?;
            let reservation = self.store.reserve(&request).await?;
            tracing::info!(payment_id = %reservation.payment_id, state = %reservation.state, "stock reserved");
            Ok(reservation_to_wire(reservation))
        })
        .await
    }

    async fn commit_reservation(
        &self,
        req: Request<wire::ReservationRequest>,
    ) -> Result<Response<wire::Reservation>, Status> {
        let span = self.admit("CommitReservation", &req, Access::Service)?;
        let payment_id = req.into_inner().payment_id;
        answer(span, async {
            let payment_id = PaymentId::parse("payment_id", &payment_id)?;
            let reservation = self.store.commit(&payment_id).await?;
            tracing::info!(%payment_id, "reservation committed");
            Ok(reservation_to_wire(reservation))
        })
        .await
    }

    async fn release_reservation(
        &self,
        req: Request<wire::ReservationRequest>,
    ) -> Result<Response<wire::Reservation>, Status> {
        let span = self.admit("ReleaseReservation", &req, Access::Service)?;
        let payment_id = req.into_inner().payment_id;
        answer(span, async {
            let payment_id = PaymentId::parse("payment_id", &payment_id)?;
            let reservation = self.store.release(&payment_id).await?;
            tracing::info!(%payment_id, "reservation released");
            Ok(reservation_to_wire(reservation))
        })
        .await
    }
}

fn product_from_wire(input: wire::ProductInput) -> UncheckedProduct {
    UncheckedProduct {
        title: input.title.to_string(),
        price_cents: input.price_cents,
        rate: input.rate,
        description: input.description.to_string(),
        cover: input.cover.to_string(),
        detail: input.detail.to_string(),
        specifications: input
            .specifications
            .into_iter()
            .map(|spec| UncheckedSpecification {
                item: spec.item.to_string(),
                value: spec.value.to_string(),
            })
            .collect(),
    }
}

fn product_to_wire(product: Product) -> wire::Product {
    wire::Product {
        id: product.id.get(),
        title: product.title.into(),
        price_cents: product.price_cents,
        rate: product.rate,
        description: product.description.into(),
        cover: product.cover.into(),
        detail: product.detail.into(),
        specifications: product
            .specifications
            .into_iter()
            .map(|spec| wire::Specification {
                id: spec.id,
                item: spec.item.into(),
                value: spec.value.into(),
                product_id: spec.product_id.get(),
            })
            .collect(),
    }
}

fn stock_to_wire(stock: Stock) -> wire::Stock {
    wire::Stock {
        id: stock.id,
        amount: stock.amount,
        frozen: stock.frozen,
        product_id: stock.product_id.get(),
    }
}

fn advertisement_to_wire(ad: Advertisement) -> wire::Advertisement {
    wire::Advertisement {
        id: ad.id,
        image: ad.image.into(),
        product_id: ad.product_id.get(),
    }
}

fn reservation_to_wire(reservation: Reservation) -> wire::Reservation {
    wire::Reservation {
        payment_id: reservation.payment_id.as_str().to_owned().into(),
        state: match reservation.state {
            ReservationState::Reserved => wire::ReservationState::RESERVED,
            ReservationState::Committed => wire::ReservationState::COMMITTED,
            ReservationState::Released => wire::ReservationState::RELEASED,
        },
        items: reservation
            .lines
            .into_iter()
            .map(|line| wire::ReservationItem {
                product_id: line.product_id.get(),
                amount: line.amount,
            })
            .collect(),
        unit_prices: reservation
            .unit_prices
            .into_iter()
            .map(|(product_id, unit_price_cents)| wire::ReservedPrice {
                product_id: product_id.get(),
                unit_price_cents,
            })
            .collect(),
    }
}
