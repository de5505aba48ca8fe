//! The account service's rules, free of wire types and SQL: validated fields, the shape of an
//! account and of the requests that change it, and who may do what.

pub mod access;
mod account;
mod fields;

pub use account::{Account, NewAccount, ProfileUpdate, RegistrationInput, UpdateInput};
pub use fields::{FieldErrors, Password, Role, UniqueField, Username};
