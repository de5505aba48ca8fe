//! The gateway: the bookstore's REST API and OAuth2 token endpoint, on hyper 1, turning each
//! REST call into Thrift (account) and gRPC (warehouse, payment) calls.
//!
//! Layers: [`routes`] parse and validate input and apply [`auth`] rules; [`backends`] make the
//! RPCs (discovery, deadlines, retries, metadata); [`errors`] is the one place failures become
//! HTTP answers; [`oauth`] issues tokens; [`server`] serves connections and shuts down
//! gracefully.

mod auth;
mod backends;
pub mod configuration;
mod errors;
mod forwarded;
mod input;
mod metrics;
mod oauth;
mod rate_limit;
mod readiness;
pub mod routes;
mod server;
mod storefront;
#[cfg(feature = "testing")]
pub mod testing;
mod throttle;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::any,
};
use platform::{
    serve::{self, BindError},
    shutdown::CancellationToken,
};
use tokio::{net::TcpListener, sync::watch};
use tower_http::{
    limit::RequestBodyLimitLayer, services::ServeDir, set_header::SetResponseHeaderLayer,
};

use crate::{
    backends::{Backends, Call},
    configuration::GatewayConfig,
    errors::ApiError,
    oauth::{Clients, OAuth, OAuthSetupError, TokenIssuer},
    rate_limit::RateLimits,
    readiness::Readiness,
    throttle::LoginThrottle,
};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    OAuth(#[from] OAuthSetupError),
    #[error("static file directory {0} does not exist")]
    StaticDir(PathBuf),
}

/// What every handler can reach (see [`SharedState`], which it dereferences to). Cloning it
/// bumps one reference count: axum clones the state several times for every request, and
/// cloning the parts one by one (the backend clients are whole service stacks) showed in the
/// gateway's profile (see BENCHMARKS.md).
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct SharedState {
    pub config: watch::Receiver<GatewayConfig>,
    pub backends: Backends,
    pub tokens: Arc<TokenIssuer>,
    pub clients: Arc<Clients>,
    pub readiness: Readiness,
    pub login_throttle: Arc<LoginThrottle>,
    pub rate_limits: Arc<RateLimits>,
}

impl AppState {
    /// A backend call context with the request budget as configured right now.
    pub fn call(&self, token: Option<String>, request_id: String) -> Call {
        let budget = self.config.borrow().request.budget();
        Call::new(token, request_id, budget)
    }
}

/// A bound, ready-to-run gateway.
pub struct Application {
    server: server::Server,
    address: SocketAddr,
}

impl Application {
    /// Binds `[server] listen` and builds everything; `config` is the live configuration.
    pub async fn build(
        config: watch::Receiver<GatewayConfig>,
        stop: CancellationToken,
    ) -> Result<Self, BuildError> {
        let listen = config.borrow().server.listen.clone();
        let listener = serve::bind(&listen).await?;
        Self::build_with_listener(config, listener, stop).await
    }

    /// As [`Self::build`], on a listener the caller already bound.
    pub async fn build_with_listener(
        config: watch::Receiver<GatewayConfig>,
        listener: TcpListener,
        stop: CancellationToken,
    ) -> Result<Self, BuildError> {
        let settings = config.borrow().clone();
        let address = serve::local_address(&listener, &settings.server.listen)?;
        let oauth = OAuth::load(&settings.oauth)?;
        oauth
            .tokens
            .follow_key_files(stop.clone())
            .map_err(OAuthSetupError::from)?;
        if let Some(dir) = &settings.static_files.dir
            && !dir.is_dir()
        {
            return Err(BuildError::StaticDir(dir.clone()));
        }
        let backends = Backends::start(config.clone(), stop.clone()).await;
        let readiness = Readiness::start(
            backends.clone(),
            Duration::from_secs(settings.discovery.health_check_seconds.max(1)),
            stop.clone(),
        );
        let state = AppState(Arc::new(SharedState {
            config,
            backends,
            tokens: oauth.tokens,
            clients: oauth.clients,
            readiness: readiness.clone(),
            login_throttle: Arc::new(LoginThrottle::new(settings.login_throttle.clone())),
            rate_limits: Arc::new(RateLimits::new(&settings.rate_limits)),
        }));
        let router = router(state, &settings);
        Ok(Self {
            server: server::Server {
                listener,
                router,
                stop,
                readiness,
                readiness_grace: Duration::from_millis(settings.server.readiness_grace_ms),
                drain: Duration::from_secs(settings.server.drain_seconds),
                limits: server::Limits::of(&settings.server),
                trusted_proxies: settings.login_throttle.trusted_proxies.clone().into(),
            },
            address,
        })
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until the stop token is cancelled and the drain finishes (or its deadline passes).
    pub async fn run_until_stopped(self) {
        tracing::info!(address = %self.address, "gateway ready");
        self.server.run().await;
    }
}

/// The whole HTTP surface: API routes, JSON 404/405/413 answers, static files, and the
/// per-request middleware.
fn router(state: AppState, settings: &GatewayConfig) -> Router {
    let api = routes::table()
        .into_router()
        .route("/restful/{*rest}", any(routes::api_not_found))
        .route("/oauth/{*rest}", any(routes::api_not_found))
        .method_not_allowed_fallback(routes::method_not_allowed);
    // Everything else: the configured front-end directory (with the demo pictures it lacks),
    // or the storefront compiled into this binary.
    let api = match &settings.static_files.dir {
        Some(dir) => {
            let pictures = tower::service_fn(|request: axum::extract::Request| async move {
                Ok::<_, std::convert::Infallible>(storefront::picture(
                    request.method(),
                    request.uri(),
                    request.headers(),
                ))
            });
            api.fallback_service(
                tower::ServiceBuilder::new()
                    .layer(SetResponseHeaderLayer::if_not_present(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("no-cache"),
                    ))
                    .service(
                        ServeDir::new(dir)
                            .append_index_html_on_directories(true)
                            .fallback(pictures),
                    ),
            )
        }
        None => {
            let storefront = storefront::Storefront::new();
            api.fallback(
                move |method: axum::http::Method,
                      uri: axum::http::Uri,
                      headers: axum::http::HeaderMap| {
                    let storefront = storefront.clone();
                    async move { storefront.serve(&method, &uri, &headers) }
                },
            )
        }
    };
    api.with_state(state)
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(settings.server.max_body_bytes))
        .layer(middleware::map_response(json_payload_too_large))
        .layer(middleware::from_fn(metrics::observe))
}

/// tower-http's 413 (a Content-Length over the limit) in the API's error shape.
async fn json_payload_too_large(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        ApiError::PayloadTooLarge.into_response()
    } else {
        response
    }
}
