//! Reads an account straight from the account service, over Thrift with a Volo client.
//!
//! ```sh
//! cargo run -p bookstore-examples --bin account-client -- --username icyfenix
//! ```
//!
//! The token travels in the TTHeader, under the transient key `authorization`, the way Volo and
//! Kitex clients carry it. (A client that cannot set TTHeader metainfo puts it in the request's
//! `token` field instead: see `examples/python/account_client.py`.)

use std::cell::RefCell;

use bookstore_examples::{Args, DEADLINE, user_token};
use clap::Parser;
use metainfo::{Forward, METAINFO, MetaInfo};
use rpc_idl::account::{AccountServiceClientBuilder, GetAccountByUsernameRequest};
use volo_thrift::MaybeException;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let token = user_token(&args).await?;
    let client = AccountServiceClientBuilder::new("account")
        .address(args.addresses.account)
        .rpc_timeout(Some(DEADLINE))
        .build();

    let mut metainfo = MetaInfo::new();
    metainfo.set_transient("authorization", format!("Bearer {token}"));
    let request = GetAccountByUsernameRequest {
        username: args.login.username.clone().into(),
        token: None,
    };
    let answer = METAINFO
        .scope(
            RefCell::new(metainfo),
            client.get_account_by_username(request),
        )
        .await?;
    match answer {
        MaybeException::Ok(account) => {
            println!(
                "account {}: {} <{}>, roles {:?}",
                account.id, account.name, account.email, account.roles
            );
            Ok(())
        }
        MaybeException::Exception(refusal) => anyhow::bail!("refused: {refusal:?}"),
    }
}
