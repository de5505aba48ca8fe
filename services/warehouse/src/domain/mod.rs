//! The warehouse's rules, free of wire types and SQL.
//!
//! Inputs arrive as plain "unchecked" values and leave `parse` either as a type that can only
//! hold valid data or as [`FieldErrors`] listing every problem at once, so a client fixes all of
//! its mistakes in one round trip. Stored data comes back as the plain view types below.

mod errors;
mod product;
mod reservation;
mod stock;

pub use errors::{FieldErrors, StorageFailure, WarehouseError};
pub use product::{
    Advertisement, Product, ProductDraft, ProductId, ProductUpdate, Specification,
    SpecificationDraft, UncheckedProduct, UncheckedSpecification,
};
pub use reservation::{
    PaymentId, Reservation, ReservationLine, ReservationState, StockReservation, UncheckedItem,
};
pub use stock::{Stock, StockAmount, StockChange};
