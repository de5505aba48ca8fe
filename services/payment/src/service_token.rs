//! The payment service's own identity towards the warehouse: an access token with scope SERVICE.
//!
//! [`ClientCredentials`] gets one from the configured OAuth2 token endpoint (the gateway's
//! `/oauth/token`) with the `client_credentials` grant, and caches it until shortly before it
//! expires, so normally one token request serves thousands of warehouse calls. Every request has
//! a deadline. A token the warehouse refuses is dropped from the cache ([`ServiceTokenSource::
//! invalidate`]) so the next call fetches a fresh one (the issuer's key may have rotated).
//!
//! The trait exists so that an embedding program can supply tokens another way; the service
//! itself only ever uses the HTTP client-credentials path, because only the token issuer holds
//! the signing key.

use std::{
    future::Future,
    pin::Pin,
    sync::Mutex,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Deserialize;

use crate::configuration::ServiceCredentials;

/// A boxed future, so the trait can be used as `dyn ServiceTokenSource`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the payment service's SERVICE-scoped access tokens come from.
pub trait ServiceTokenSource: Send + Sync + 'static {
    /// A currently valid access token (the bare JWT, without `Bearer `).
    fn token(&self) -> BoxFuture<'_, Result<String, ServiceTokenError>>;

    /// Forgets `token` if it is the cached one, because a callee refused it.
    fn invalidate(&self, token: &str);
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceTokenError {
    #[error("invalid service_credentials.token_url {url:?}: {message}")]
    BadUrl { url: String, message: String },
    #[error("the token endpoint is unreachable: {0}")]
    Unreachable(String),
    #[error("the token endpoint did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the token endpoint refused the service's credentials (HTTP {status}): {error}")]
    Refused { status: u16, error: String },
    #[error("the token endpoint's answer is unusable: {0}")]
    Malformed(String),
}

/// Used when the endpoint does not say how long its token lives.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// A token is renewed this long before it expires at the latest ...
const MAX_RENEWAL_MARGIN: Duration = Duration::from_secs(60);
/// ... or, for short-lived tokens, when this fraction of its life remains.
const RENEWAL_FRACTION: u32 = 10;
/// Token responses are small; anything bigger is not one.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// OAuth2 client-credentials grant against `token_url`, with a cached token.
pub struct ClientCredentials {
    http: Client<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
    form: String,
    timeout: Duration,
    cached: Mutex<Option<CachedToken>>,
    /// Lets one caller fetch while the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

struct CachedToken {
    token: String,
    renew_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl ClientCredentials {
    pub fn new(config: &ServiceCredentials) -> Result<Self, ServiceTokenError> {
        let bad_url = |message: &str| ServiceTokenError::BadUrl {
            url: config.token_url.clone(),
            message: message.to_owned(),
        };
        let uri: http::Uri = config
            .token_url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad_url(&e.to_string()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(bad_url("must be an http:// URL with a host"));
        }
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &config.client_id)
            .append_pair("client_secret", config.client_secret.expose())
            .append_pair("scope", &config.scope)
            .finish();
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            http,
            uri,
            form,
            timeout,
            cached: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn cached(&self) -> Option<String> {
        let cached = self.cached.lock().ok()?;
        cached
            .as_ref()
            .filter(|c| Instant::now() < c.renew_at)
            .map(|c| c.token.clone())
    }

    async fn fetch(&self) -> Result<(String, Duration), ServiceTokenError> {
        let request = http::Request::post(self.uri.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(self.form.clone())))
            .map_err(|e| ServiceTokenError::Malformed(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| ServiceTokenError::Unreachable(e.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ServiceTokenError::Unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, ServiceTokenError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ServiceTokenError::Timeout(self.timeout))??;
        if status.is_success() {
            let answer: TokenResponse = serde_json::from_slice(&body)
                .map_err(|e| ServiceTokenError::Malformed(e.to_string()))?;
            if answer.access_token.is_empty() {
                return Err(ServiceTokenError::Malformed("empty access_token".into()));
            }
            let lifetime = answer
                .expires_in
                .map_or(DEFAULT_LIFETIME, Duration::from_secs);
            return Ok((answer.access_token, lifetime));
        }
        if status.is_client_error() {
            let error = serde_json::from_slice::<ErrorResponse>(&body)
                .map(|e| match e.error_description {
                    Some(description) => format!("{}: {description}", e.error),
                    None => e.error,
                })
                .unwrap_or_else(|_| "no OAuth2 error body".to_owned());
            return Err(ServiceTokenError::Refused {
                status: status.as_u16(),
                error,
            });
        }
        Err(ServiceTokenError::Unreachable(format!("HTTP {status}")))
    }
}

/// When a token that lives `lifetime` (from `obtained`) should be replaced.
fn renewal_time(obtained: Instant, lifetime: Duration) -> Instant {
    let margin = (lifetime / RENEWAL_FRACTION).min(MAX_RENEWAL_MARGIN);
    obtained + lifetime.saturating_sub(margin)
}

impl ServiceTokenSource for ClientCredentials {
    fn token(&self) -> BoxFuture<'_, Result<String, ServiceTokenError>> {
        Box::pin(async move {
            if let Some(token) = self.cached() {
                return Ok(token);
            }
            let _only_one_fetch = self.fetching.lock().await;
            if let Some(token) = self.cached() {
                return Ok(token);
            }
            let obtained = Instant::now();
            let (token, lifetime) = self.fetch().await?;
            tracing::debug!(
                lifetime_seconds = lifetime.as_secs(),
                "service token obtained"
            );
            if let Ok(mut cached) = self.cached.lock() {
                *cached = Some(CachedToken {
                    token: token.clone(),
                    renew_at: renewal_time(obtained, lifetime),
                });
            }
            Ok(token)
        })
    }

    fn invalidate(&self, token: &str) {
        if let Ok(mut cached) = self.cached.lock()
            && cached.as_ref().is_some_and(|c| c.token == token)
        {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_shortly_before_they_expire() {
        let start = Instant::now();
        assert_eq!(
            renewal_time(start, Duration::from_secs(10_800)),
            start + Duration::from_secs(10_740)
        );
        assert_eq!(
            renewal_time(start, Duration::from_secs(10)),
            start + Duration::from_secs(9)
        );
        assert_eq!(renewal_time(start, Duration::ZERO), start);
    }

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        let mut config = ServiceCredentials::default();
        assert!(ClientCredentials::new(&config).is_ok());
        for url in ["https://gateway/oauth/token", "/oauth/token", "not a url"] {
            config.token_url = url.into();
            assert!(
                matches!(
                    ClientCredentials::new(&config),
                    Err(ServiceTokenError::BadUrl { .. })
                ),
                "{url}"
            );
        }
    }
}
