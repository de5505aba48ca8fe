//! What every example needs: where the services are, and a token from the gateway's OAuth2
//! endpoint. Each program in `src/bin/` calls one service directly, the way your own client
//! would; see `README.md` beside this file.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

/// Every call the examples make gives up after this long.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// The launcher's and Kubernetes' addresses (`cargo run --release -p bookstore`).
#[derive(Debug, Clone, clap::Args)]
pub struct Addresses {
    /// The gateway, whose `/oauth/token` issues tokens.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// The account service (Thrift).
    #[arg(long, default_value = "127.0.0.1:8810")]
    pub account: SocketAddr,
    /// The warehouse service (gRPC).
    #[arg(long, default_value = "127.0.0.1:8820")]
    pub warehouse: SocketAddr,
    /// The payment service (gRPC).
    #[arg(long, default_value = "127.0.0.1:8830")]
    pub payment: SocketAddr,
}

/// Every example's command line: where the services are, and whom to log in as.
#[derive(Debug, Clone, clap::Parser)]
pub struct Args {
    #[command(flatten)]
    pub addresses: Addresses,
    #[command(flatten)]
    pub login: Login,
}

/// A user's credentials; the defaults are the launcher's seeded administrator.
#[derive(Debug, Clone, clap::Args)]
pub struct Login {
    #[arg(long, default_value = "icyfenix")]
    pub username: String,
    /// As the web front-end sends it (the development default, public).
    #[arg(long, default_value = "MFfTW3uNI4eqhwDkG7HP9p2mzEUu/r2")]
    pub password: String,
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// An access token for `args.login`, from the `password` grant (as the web front-end's client).
pub async fn user_token(args: &Args) -> anyhow::Result<String> {
    let (addresses, login) = (&args.addresses, &args.login);
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "password"),
            ("username", login.username.as_str()),
            ("password", login.password.as_str()),
            ("client_id", "bookstore_frontend"),
            ("client_secret", "bookstore_secret"),
        ])
        .finish();
    let uri = format!(
        "{}/oauth/token?{query}",
        addresses.gateway.trim_end_matches('/')
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let answer = tokio::time::timeout(DEADLINE, client.get(uri.parse()?))
        .await
        .context("the token endpoint did not answer in time")?
        .context("cannot reach the gateway's token endpoint")?;
    let status = answer.status();
    let body = answer.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "the token endpoint refused ({status}): {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(serde_json::from_slice::<TokenAnswer>(&body)
        .context("the token endpoint's answer")?
        .access_token)
}
