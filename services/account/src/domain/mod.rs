//! The account service's rules, free of wire types and SQL: validated fields, the shape of an
//! account and of the requests that change it, and who may do what.

pub mod access;
mod account;
mod fields;

pub use account::{Account, NewAccount, Profile, ProfileUpdate, RegistrationInput, UpdateInput};
pub use fields::{
    Email, FieldError, Password, Role, Telephone, USERNAME_MAX_CHARS, UniqueField, Username,
    ValidationErrors,
};
