//! Service discovery for Volo clients: a list of `host:port` entries (Kubernetes Service names,
//! usually headless ones), resolved by DNS, re-resolved periodically and whenever the configured
//! list changes, and published to Volo's load balancer, which spreads calls over every address.
//!
//! This is how the gateway follows `[account.client] hostport = [...]` edits without a restart:
//! requests in flight keep their connections; new requests pick from the new list.

use std::{
    collections::{BTreeSet, HashMap},
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use async_broadcast::{InactiveReceiver, Receiver, Sender};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use volo::{
    context::Endpoint,
    discovery::{Change, Discover, Instance, diff_address},
    net::Address,
};

/// How long one DNS lookup may take before the previous answer is kept.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// A [`Discover`] over DNS-resolved `host:port` entries. Cheap to clone.
#[derive(Clone)]
pub struct DnsDiscover {
    inner: Arc<Inner>,
}

struct Inner {
    instances: RwLock<Vec<Arc<Instance>>>,
    changes: Sender<Change<()>>,
    /// Keeps the broadcast channel open while no load balancer listens yet.
    _keep_open: InactiveReceiver<Change<()>>,
}

impl DnsDiscover {
    /// Resolves `hostports` now, then again every `refresh` and whenever the channel changes,
    /// until `stop` fires.
    pub async fn start(
        mut hostports: watch::Receiver<Vec<String>>,
        refresh: Duration,
        stop: CancellationToken,
    ) -> Self {
        let (mut changes, receiver) = async_broadcast::broadcast(16);
        changes.set_overflow(true);
        let mut known = HashMap::new();
        let configured = hostports.borrow_and_update().clone();
        let initial = resolve_all(&configured, &mut known).await;
        let discover = Self {
            inner: Arc::new(Inner {
                instances: RwLock::new(initial),
                changes,
                _keep_open: receiver.deactivate(),
            }),
        };
        let updater = discover.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(refresh);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    changed = hostports.changed() => if changed.is_err() { break },
                    _ = ticker.tick() => {}
                }
                let configured = hostports.borrow_and_update().clone();
                known.retain(|hostport, _| configured.contains(hostport));
                let next = resolve_all(&configured, &mut known).await;
                updater.publish(next);
            }
        });
        discover
    }

    /// A discover over fixed addresses (tests, and callers that resolved already).
    pub fn fixed(addresses: &[SocketAddr]) -> Self {
        let (changes, receiver) = async_broadcast::broadcast(1);
        Self {
            inner: Arc::new(Inner {
                instances: RwLock::new(addresses.iter().copied().map(instance).collect()),
                changes,
                _keep_open: receiver.deactivate(),
            }),
        }
    }

    /// The addresses calls are currently spread over.
    pub fn addresses(&self) -> Vec<Address> {
        self.read().iter().map(|i| i.address.clone()).collect()
    }

    fn read(&self) -> Vec<Arc<Instance>> {
        self.inner
            .instances
            .read()
            .map(|list| list.clone())
            .unwrap_or_default()
    }

    fn publish(&self, next: Vec<Arc<Instance>>) {
        let previous = self.read();
        let (change, changed) = diff_address((), previous, next.clone());
        if !changed {
            return;
        }
        if let Ok(mut list) = self.inner.instances.write() {
            *list = next;
        }
        tracing::info!(addresses = ?self.addresses(), "backend addresses changed");
        let _ = self.inner.changes.try_broadcast(change);
    }
}

impl Discover for DnsDiscover {
    type Key = ();
    type Error = Infallible;

    async fn discover<'s>(&'s self, _: &'s Endpoint) -> Result<Vec<Arc<Instance>>, Self::Error> {
        Ok(self.read())
    }

    fn key(&self, _: &Endpoint) -> Self::Key {}

    fn watch(&self, _keys: Option<&[Self::Key]>) -> Option<Receiver<Change<Self::Key>>> {
        Some(self.inner.changes.new_receiver())
    }
}

fn instance(address: SocketAddr) -> Arc<Instance> {
    Arc::new(Instance {
        address: Address::Ip(address),
        weight: 1,
        tags: Default::default(),
    })
}

/// Resolves every entry; an entry whose lookup fails keeps its last known addresses, so a DNS
/// hiccup does not empty the list.
async fn resolve_all(
    hostports: &[String],
    known: &mut HashMap<String, Vec<SocketAddr>>,
) -> Vec<Arc<Instance>> {
    let mut addresses = BTreeSet::new();
    for hostport in hostports {
        match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(hostport.as_str())).await
        {
            Ok(Ok(found)) => {
                let found: Vec<SocketAddr> = found.collect();
                known.insert(hostport.clone(), found);
            }
            Ok(Err(error)) => tracing::warn!(%hostport, %error, "cannot resolve backend address"),
            Err(_) => tracing::warn!(%hostport, "backend address lookup timed out"),
        }
        addresses.extend(known.get(hostport).into_iter().flatten().copied());
    }
    addresses.into_iter().map(instance).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn follows_configuration_changes_and_keeps_answers_when_dns_fails() {
        let (config, hostports) = watch::channel(vec![
            "127.0.0.1:1000".to_owned(),
            "localhost:1001".to_owned(),
        ]);
        let stop = CancellationToken::new();
        let discover = DnsDiscover::start(hostports, Duration::from_secs(3600), stop.clone()).await;
        let initial = discover.addresses();
        assert!(
            initial.contains(&Address::Ip("127.0.0.1:1000".parse().unwrap())),
            "{initial:?}"
        );
        assert!(initial.len() >= 2, "{initial:?}");

        let mut changes = discover.watch(None).expect("watchable");
        config.send_replace(vec!["127.0.0.2:2000".to_owned()]);
        let change = tokio::time::timeout(Duration::from_secs(5), changes.recv())
            .await
            .expect("a change")
            .expect("open");
        assert_eq!(change.all.len(), 1);
        assert_eq!(
            discover.addresses(),
            vec![Address::Ip("127.0.0.2:2000".parse().unwrap())]
        );
        stop.cancel();
    }
}
