//! Who the client is when the gateway sits behind proxies (a Kubernetes ingress, a load
//! balancer): every connection then comes from a proxy, and only the `X-Forwarded-For` header
//! names the machine the request started from. The header is believed only as far as the
//! configured `[login_throttle] trusted_proxies` reach; anything a client wrote into it itself
//! is ignored.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Each proxy appends the address it received the request from.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// One network of proxies whose `X-Forwarded-For` entries are believed: CIDR (`10.0.0.0/8`,
/// `fd00::/8`) or a single address (`192.0.2.7`, meaning `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedNetwork(IpNet);

/// A `trusted_proxies` entry that is no IP network. The configuration loader adds the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an IP network (such as 10.0.0.0/8, fd00::/8 or the single address 192.0.2.7)"
)]
pub struct InvalidNetwork(String);

impl TrustedNetwork {
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.contains(&address)
    }
}

impl FromStr for TrustedNetwork {
    type Err = InvalidNetwork;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let network = if text.contains('/') {
            text.parse::<IpNet>().ok()
        } else {
            text.parse::<IpAddr>().ok().map(IpNet::from)
        };
        // `10.1.2.3/8` means the network 10.0.0.0/8, as it does to routers.
        network
            .map(|network| Self(network.trunc()))
            .ok_or_else(|| InvalidNetwork(text.to_owned()))
    }
}

impl TryFrom<String> for TrustedNetwork {
    type Error = InvalidNetwork;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<TrustedNetwork> for String {
    fn from(network: TrustedNetwork) -> Self {
        network.to_string()
    }
}

impl fmt::Display for TrustedNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The address of the client behind a request that arrived from `peer`.
///
/// From an untrusted peer that is the peer: its `X-Forwarded-For` could say anything. From a
/// trusted proxy, the header lines (in order, comma-separated entries) are read from the right,
/// past every entry that is itself a trusted proxy; the first other entry is the client. What
/// lies further left was written by the client and is never read. A malformed entry at that
/// point, a missing header or a chain of trusted proxies only gives the peer: a bad header never
/// fails the request.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedNetwork]) -> IpAddr {
    // An IPv4 client of a dual-stack listener shows up as ::ffff:a.b.c.d.
    let peer = peer.to_canonical();
    let is_trusted = |address: IpAddr| trusted.iter().any(|network| network.contains(address));
    if !is_trusted(peer) {
        return peer;
    }
    for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(line) = line.to_str() else {
            return peer;
        };
        for entry in line.rsplit(',') {
            match forwarded_address(entry) {
                Some(address) if is_trusted(address) => {}
                Some(address) => return address,
                None => return peer,
            }
        }
    }
    peer
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (some proxies add it).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let address = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn networks(list: &[&str]) -> Vec<TrustedNetwork> {
        list.iter()
            .map(|network| network.parse().expect("network"))
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn forwarded_for(lines: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                X_FORWARDED_FOR,
                HeaderValue::from_bytes(line).expect("header value"),
            );
        }
        headers
    }

    /// Each case is (peer, `X-Forwarded-For` lines, the client expected), with the ingress
    /// (10.0.0.0/8, fd00::/8) and the load balancer (192.0.2.7) trusted.
    fn assert_clients(cases: &[(&str, &[&[u8]], &str)]) {
        let trusted = networks(&["10.0.0.0/8", "192.0.2.7", "fd00::/8"]);
        for (peer, lines, expected) in cases {
            let client = client_ip(ip(peer), &forwarded_for(lines), &trusted);
            assert_eq!(client, ip(expected), "from {peer} with {lines:?}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_clients(&[
            ("198.51.100.9", &[b"203.0.113.5"], "198.51.100.9"),
            ("2001:db8::9", &[b"203.0.113.5"], "2001:db8::9"),
        ]);
        // Nothing is trusted by default.
        let headers = forwarded_for(&[b"203.0.113.5"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &[]), ip("10.0.0.1"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        assert_clients(&[
            ("10.1.2.3", &[b"203.0.113.5"], "203.0.113.5"),
            ("192.0.2.7", &[b"203.0.113.5"], "203.0.113.5"),
        ]);
    }

    #[test]
    fn trusted_proxies_in_a_chain_are_passed_over() {
        // Load balancer -> ingress -> gateway: each appended the address it was reached from,
        // in one header line or one line per proxy.
        assert_clients(&[
            ("10.1.2.3", &[b"203.0.113.5, 192.0.2.7"], "203.0.113.5"),
            (
                "10.1.2.3",
                &[b"203.0.113.5", b"192.0.2.7", b"10.9.9.9"],
                "203.0.113.5",
            ),
        ]);
    }

    #[test]
    fn what_the_client_wrote_itself_is_never_read() {
        // The client sent `X-Forwarded-For: 1.1.1.1, 10.0.0.1` (or garbage) hoping to pick its
        // key; the proxy appended the real address.
        assert_clients(&[
            (
                "10.1.2.3",
                &[b"1.1.1.1, 10.0.0.1, 203.0.113.5"],
                "203.0.113.5",
            ),
            ("10.1.2.3", &[b"1.1.1.1", b"203.0.113.5"], "203.0.113.5"),
            ("10.1.2.3", &[b"not an address, 203.0.113.5"], "203.0.113.5"),
        ]);
    }

    #[test]
    fn a_malformed_or_missing_entry_gives_the_peer() {
        assert_clients(&[
            ("10.1.2.3", &[], "10.1.2.3"),
            ("10.1.2.3", &[b"not an address"], "10.1.2.3"),
            ("10.1.2.3", &[b"203.0.113.5, "], "10.1.2.3"),
            ("10.1.2.3", &[b""], "10.1.2.3"),
            ("10.1.2.3", &[b"203.0.113.5, 999.1.1.1"], "10.1.2.3"),
            ("10.1.2.3", &[b"203.0.113.5, unknown"], "10.1.2.3"),
            ("10.1.2.3", &[b"203.0.113.5, 10.0.0.0/8"], "10.1.2.3"),
            ("10.1.2.3", &[b"203.0.113.\xff"], "10.1.2.3"),
            ("10.1.2.3", &[b"203.0.113.5", b"\xff"], "10.1.2.3"),
            // Every entry a trusted proxy: there is no client to name but the peer.
            ("10.1.2.3", &[b"10.4.4.4, 192.0.2.7"], "10.1.2.3"),
        ]);
    }

    #[test]
    fn ipv6_whitespace_and_ports_are_understood() {
        assert_clients(&[
            ("fd00::1", &[b"2001:db8::5"], "2001:db8::5"),
            ("10.1.2.3", &[b"  2001:db8::5 ,\t fd00::7  "], "2001:db8::5"),
            ("10.1.2.3", &[b"[2001:db8::5]:4711"], "2001:db8::5"),
            ("10.1.2.3", &[b"203.0.113.5:4711"], "203.0.113.5"),
            // An IPv4 proxy seen through a dual-stack listener is still the trusted proxy.
            ("::ffff:10.1.2.3", &[b"203.0.113.5"], "203.0.113.5"),
        ]);
    }

    #[test]
    fn networks_are_cidr_or_single_addresses() {
        let parsed = networks(&[
            "10.0.0.0/8",
            "192.0.2.7",
            "fd00::/8",
            "2001:db8::1",
            "10.1.2.3/16",
        ]);
        let shown: Vec<String> = parsed.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            shown,
            [
                "10.0.0.0/8",
                "192.0.2.7/32",
                "fd00::/8",
                "2001:db8::1/128",
                "10.1.0.0/16"
            ]
        );
        assert!(parsed[1].contains(ip("192.0.2.7")) && !parsed[1].contains(ip("192.0.2.8")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "fd00::/129",
            "proxy.internal",
            "",
            "10.0.0.0/",
        ] {
            assert_eq!(
                bad.parse::<TrustedNetwork>(),
                Err(InvalidNetwork(bad.to_owned())),
                "{bad}"
            );
        }
    }
}
