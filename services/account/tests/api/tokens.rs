//! Where a Thrift caller may put its token: TTHeader metainfo (transient, as Volo sends it;
//! persistent, as Kitex may), with or without `Bearer `, or the request's `token` field, which
//! stock Thrift clients can set. A token that is present but unreadable, or two that disagree,
//! is Unauthenticated: never an anonymous call.

use std::cell::RefCell;

use metainfo::{Forward, METAINFO, MetaInfo};
use rpc_idl::account::*;
use volo_thrift::MaybeException;

use crate::common::*;

crate::on_both_backends!(
    every_carrier_of_the_token_is_read,
    unreadable_or_disagreeing_tokens_are_refused,
);

/// Reads `username` with `metainfo` in the TTHeader and `field` in the request.
async fn read(
    server: &TestServer,
    username: &str,
    metainfo: MetaInfo,
    field: Option<String>,
) -> MaybeException<Account, AccountServiceGetAccountByUsernameException> {
    let call = server
        .client
        .get_account_by_username(GetAccountByUsernameRequest {
            username: username.to_owned().into(),
            token: field.map(Into::into),
        });
    METAINFO
        .scope(RefCell::new(metainfo), call)
        .await
        .expect("the call reached the server and came back")
}

fn transient(value: String) -> MetaInfo {
    let mut metainfo = MetaInfo::new();
    metainfo.set_transient("authorization", value);
    metainfo
}

async fn every_carrier_of_the_token_is_read(server: TestServer) {
    let account = server.register("tara").await;
    let token = server.owner(&account).expect("token");
    let mut persistent = MetaInfo::new();
    persistent.set_persistent("authorization", format!("Bearer {token}"));
    for (how, metainfo, field) in [
        (
            "TTHeader, Bearer",
            transient(format!("Bearer {token}")),
            None,
        ),
        ("TTHeader, bare JWT", transient(token.clone()), None),
        ("TTHeader, persistent", persistent, None),
        ("field, bare JWT", MetaInfo::new(), Some(token.clone())),
        (
            "field, Bearer",
            MetaInfo::new(),
            Some(format!("Bearer {token}")),
        ),
        (
            "both, the same token",
            transient(format!("Bearer {token}")),
            Some(token.clone()),
        ),
    ] {
        let read = expect_ok(read(&server, "tara", metainfo, field).await);
        assert_eq!(read.id, account.id, "{how}");
    }
}

async fn unreadable_or_disagreeing_tokens_are_refused(server: TestServer) {
    let account = server.register("uma").await;
    let token = server.owner(&account).expect("token");
    let admin = server.admin().expect("token");
    for (how, metainfo, field) in [
        (
            "TTHeader, another scheme",
            transient(format!("Basic {token}")),
            None,
        ),
        ("TTHeader, empty", transient(String::new()), None),
        (
            "field, garbage",
            MetaInfo::new(),
            Some("garbage".to_owned()),
        ),
        ("field, empty", MetaInfo::new(), Some(String::new())),
        (
            "field and TTHeader disagree",
            transient(format!("Bearer {admin}")),
            Some(token.clone()),
        ),
    ] {
        let refused = read(&server, "uma", metainfo, field).await;
        assert!(
            matches!(
                &refused,
                MaybeException::Exception(
                    AccountServiceGetAccountByUsernameException::Unauthenticated(_)
                )
            ),
            "{how}: {}",
            describe(&refused)
        );
    }
}
