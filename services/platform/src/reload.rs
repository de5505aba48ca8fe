//! Hot reload of a program's configuration file.
//!
//! Kubernetes mounts a ConfigMap as a directory in which `config.toml -> ..data/config.toml` and
//! `..data -> ..2026_11_26_…`; an update writes a new timestamped directory and atomically
//! renames a new `..data` symlink over the old one. No event ever names `config.toml`, and a watch
//! on the file itself dies after the first swap. So we watch the *directory*, treat any burst of
//! events as "something changed", wait for the burst to settle, re-read every layer, and publish
//! the result only if it parses and differs. A periodic re-read covers lost inotify events.

use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::configuration::ConfigSource;

/// How the reloader waits and polls.
#[derive(Debug, Clone, Copy)]
pub struct ReloadTiming {
    /// After the first event, wait until this long passes with no further event.
    pub debounce: Duration,
    /// Re-read this often even without events (inotify queues can overflow).
    pub poll_interval: Duration,
}

impl Default for ReloadTiming {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(300),
            poll_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch directory {dir}: {source}")]
pub struct ReloadError {
    dir: String,
    source: notify::Error,
}

/// Publishes `initial` now and every later valid, changed version of the configuration, until
/// `stop` fires. Without a config file there is nothing to watch and `initial` stays current.
pub fn watch_config<T>(
    source: ConfigSource,
    initial: T,
    timing: ReloadTiming,
    stop: CancellationToken,
) -> Result<watch::Receiver<T>, ReloadError>
where
    T: DeserializeOwned + PartialEq + Send + Sync + 'static,
{
    let (sender, receiver) = watch::channel(initial);
    let Some(dir) = source.directory().map(|d| d.to_path_buf()) else {
        // Keep the sender alive so receivers see a live channel, not a closed one.
        tokio::spawn(async move {
            stop.cancelled().await;
            drop(sender);
        });
        return Ok(receiver);
    };

    let watched = dir.display().to_string();
    watch_directories(vec![dir], timing, stop, move || match source.load::<T>() {
        Ok(fresh) => {
            let changed = sender.send_if_modified(|current| {
                if *current == fresh {
                    false
                } else {
                    *current = fresh;
                    true
                }
            });
            if changed {
                tracing::info!(dir = %watched, "configuration reloaded");
                metrics::counter!("config_reloads_total", "outcome" => "accepted").increment(1);
            }
        }
        Err(error) => {
            metrics::counter!("config_reloads_total", "outcome" => "refused").increment(1);
            tracing::warn!(%error, "configuration file is invalid; keeping the last good configuration");
        }
    })?;
    Ok(receiver)
}

/// Calls `reread` after every burst of changes in any of `dirs` (once it has settled) and every
/// poll interval, until `stop` fires. `reread` reads what it needs and decides whether anything
/// changed: events only say "look again". Kubernetes swaps a mounted ConfigMap's or Secret's
/// files by renaming a symlink in their directory, which is why directories are watched.
pub fn watch_directories(
    dirs: Vec<std::path::PathBuf>,
    timing: ReloadTiming,
    stop: CancellationToken,
    mut reread: impl FnMut() + Send + 'static,
) -> Result<(), ReloadError> {
    let (events_tx, mut events) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
        // Which event it was does not matter: we re-read and compare.
        let _ = events_tx.send(());
    })
    .map_err(|source| ReloadError {
        dir: String::new(),
        source,
    })?;
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| ReloadError {
                dir: dir.display().to_string(),
                source,
            })?;
    }
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(timing.poll_interval);
        poll.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                event = events.recv() => {
                    if event.is_none() { break; }
                    // Swallow the rest of the burst (a ConfigMap swap is ~7 events).
                    while let Ok(Some(())) = tokio::time::timeout(timing.debounce, events.recv()).await {}
                }
                _ = poll.tick() => {}
            }
            reread();
        }
        // Dropping the watcher here, not earlier, keeps events flowing while we run.
        for dir in &dirs {
            let _ = watcher.unwatch(dir);
        }
        tracing::debug!("directory watcher stopped");
    });
    Ok(())
}

/// A channel that starts at `initial` and then carries `pick(update)` for every update of
/// `source` for which `pick` returns `Some`, until `stop`. Outlives a closed `source`, so its
/// receivers (DNS discovery, for one) keep running until shutdown.
pub fn follow<T, U>(
    mut source: watch::Receiver<T>,
    initial: U,
    stop: CancellationToken,
    pick: impl Fn(&T) -> Option<U> + Send + 'static,
) -> watch::Receiver<U>
where
    T: Send + Sync + 'static,
    U: PartialEq + Send + Sync + 'static,
{
    source.mark_unchanged();
    let (sender, receiver) = watch::channel(initial);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = source.changed() => if changed.is_err() {
                    stop.cancelled().await;
                    break;
                },
            }
            let Some(next) = pick(&source.borrow_and_update()) else {
                continue;
            };
            sender.send_if_modified(|current| {
                if *current == next {
                    false
                } else {
                    *current = next;
                    true
                }
            });
        }
    });
    receiver
}
