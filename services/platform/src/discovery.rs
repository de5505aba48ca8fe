//! Service discovery for Volo clients: a list of `host:port` entries (Kubernetes Service names,
//! usually headless ones), resolved by DNS, re-resolved periodically and whenever the configured
//! list changes, and published to Volo's load balancer, which spreads calls over every address.
//!
//! This is how the gateway follows `[account.client] hostport = [...]` edits without a restart:
//! requests in flight keep their connections; new requests pick from the new list.
//!
//! An address that refuses connections or resets them (a replica that crashed or was OOM-killed,
//! before DNS or readiness has dropped it) can be *ejected* ([`DnsDiscover::eject`]): it leaves
//! the list for a back-off period (1 s, doubling with each ejection in a row, at most 30 s) and
//! comes back on its own, to be ejected again if it still fails, as Envoy's and Linkerd's
//! outlier detection do. The last address is never ejected: with nothing else to try, a dead
//! backend must fail its calls fast rather than leave an empty list.

use std::{
    collections::{BTreeSet, HashMap},
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use async_broadcast::{InactiveReceiver, Receiver, Sender};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use volo::{
    context::Endpoint,
    discovery::{Change, Discover, Instance, diff_address},
    net::Address,
};

/// The first ejection of an address; each further one in a row doubles it, up to the maximum.
const EJECTION_BASE: Duration = Duration::from_secs(1);
const EJECTION_MAX: Duration = Duration::from_secs(30);
/// An address back for this long without being ejected again starts from the first period.
const EJECTION_MEMORY: Duration = Duration::from_secs(60);

/// An address out of the list until `until`; its `strikes`-th ejection in a row.
#[derive(Debug, Clone, Copy)]
struct Ejection {
    until: Instant,
    strikes: u32,
}

/// How long one DNS lookup may take before the previous answer is kept.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// A [`Discover`] over DNS-resolved `host:port` entries. Cheap to clone.
#[derive(Clone)]
pub struct DnsDiscover {
    inner: Arc<Inner>,
}

struct Inner {
    /// What calls are spread over: `resolved` minus the ejected addresses.
    instances: RwLock<Vec<Arc<Instance>>>,
    /// What DNS (or the fixed list) says.
    resolved: RwLock<Vec<Arc<Instance>>>,
    ejected: Mutex<HashMap<Address, Ejection>>,
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
                instances: RwLock::new(initial.clone()),
                resolved: RwLock::new(initial),
                ejected: Mutex::new(HashMap::new()),
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
        let (mut changes, receiver) = async_broadcast::broadcast(16);
        changes.set_overflow(true);
        let instances: Vec<_> = addresses.iter().copied().map(instance).collect();
        Self {
            inner: Arc::new(Inner {
                instances: RwLock::new(instances.clone()),
                resolved: RwLock::new(instances),
                ejected: Mutex::new(HashMap::new()),
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

    /// Takes `address` out of the list for a while (see the module documentation), because a
    /// call to it found nobody there. Does nothing for an address not in the list, or for the
    /// last one.
    pub fn eject(&self, address: &Address) {
        let now = Instant::now();
        let period = {
            let Ok(mut ejected) = self.inner.ejected.lock() else {
                return;
            };
            let listed = self.read();
            if !listed.iter().any(|i| &i.address == address) || listed.len() < 2 {
                return;
            }
            let strikes = match ejected.get(address) {
                Some(last) if now < last.until + EJECTION_MEMORY => last.strikes + 1,
                _ => 1,
            };
            let period = EJECTION_BASE
                .saturating_mul(1 << (strikes - 1).min(5))
                .min(EJECTION_MAX);
            ejected.insert(
                address.clone(),
                Ejection {
                    until: now + period,
                    strikes,
                },
            );
            period
        };
        tracing::warn!(%address, ?period, "backend address ejected: it refused or dropped a call");
        metrics::counter!("discovery_ejections_total").increment(1);
        self.refresh();
        let discover = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(period).await;
            discover.refresh();
        });
    }

    /// Republishes what DNS said, minus the addresses still ejected.
    fn refresh(&self) {
        let resolved = self
            .inner
            .resolved
            .read()
            .map(|list| list.clone())
            .unwrap_or_default();
        self.publish(resolved);
    }

    /// Publishes `resolved` (DNS's answer) minus the ejected addresses, unless that leaves none.
    fn publish(&self, resolved: Vec<Arc<Instance>>) {
        if let Ok(mut list) = self.inner.resolved.write() {
            list.clone_from(&resolved);
        }
        let now = Instant::now();
        let healthy: Vec<Arc<Instance>> = match self.inner.ejected.lock() {
            Ok(ejected) => resolved
                .iter()
                .filter(|i| ejected.get(&i.address).is_none_or(|e| e.until <= now))
                .cloned()
                .collect(),
            Err(_) => resolved.clone(),
        };
        let next = if healthy.is_empty() {
            resolved
        } else {
            healthy
        };
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
    async fn an_ejected_address_leaves_the_list_for_a_while_but_never_the_last_one() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1001".parse().expect("a"),
            "127.0.0.1:1002".parse().expect("b"),
        );
        let discover = DnsDiscover::fixed(&[a, b]);
        let mut changes = discover.watch(None).expect("a change feed");
        discover.eject(&Address::Ip(a));
        assert_eq!(discover.addresses(), vec![Address::Ip(b)]);
        assert!(changes.try_recv().is_ok(), "the balancer is told");
        // The last address stays, whatever happens to it.
        discover.eject(&Address::Ip(b));
        assert_eq!(discover.addresses(), vec![Address::Ip(b)]);
        // Back after the first period (one second).
        tokio::time::sleep(EJECTION_BASE + Duration::from_millis(200)).await;
        assert_eq!(discover.addresses(), vec![Address::Ip(a), Address::Ip(b)]);
        // A second ejection in a row lasts longer.
        discover.eject(&Address::Ip(a));
        tokio::time::sleep(EJECTION_BASE + Duration::from_millis(200)).await;
        assert_eq!(discover.addresses(), vec![Address::Ip(b)]);
    }

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
