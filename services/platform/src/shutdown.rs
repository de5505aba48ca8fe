//! Graceful shutdown plumbing: one token that every server and background task watches, cancelled
//! by SIGTERM (Kubernetes) or SIGINT (Ctrl-C), and a drain deadline after which a server is
//! abandoned even if clients keep connections or streams open (volo-grpc's own drain waits
//! forever; volo-thrift's waits up to 30 s).

use std::{future::Future, time::Duration};

pub use tokio_util::sync::CancellationToken;

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; only an explicit stop will shut down");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
}

/// A token cancelled when the process receives SIGTERM or SIGINT.
pub fn token_cancelled_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        signal().await;
        trigger.cancel();
    });
    token
}

/// Runs `server` to completion, but once `stop` is cancelled gives it at most `drain` more time.
/// Returns `None` when the deadline cut the drain short.
pub async fn with_drain_deadline<F: Future>(
    server: F,
    stop: CancellationToken,
    drain: Duration,
) -> Option<F::Output> {
    tokio::pin!(server);
    tokio::select! {
        output = &mut server => return Some(output),
        _ = stop.cancelled() => {}
    }
    match tokio::time::timeout(drain, server).await {
        Ok(output) => Some(output),
        Err(_) => {
            tracing::warn!(
                drain_seconds = drain.as_secs_f64(),
                "drain deadline passed; closing remaining connections"
            );
            None
        }
    }
}
