//! The client's own address behind reverse proxies (SPEC section 7):
//! `X-Forwarded-For` is read only on a connection from a trusted proxy,
//! and then its rightmost entry that is not a trusted proxy counts. A proxy
//! appends the address it saw, so whatever a client writes into the header
//! itself stays to the left of the entry that counts.

use http::HeaderMap;
use std::net::IpAddr;

/// The address the connection came from (a request extension the accept
/// loop sets).
#[derive(Clone, Copy)]
pub struct Peer(pub IpAddr);

/// Trusted proxies: addresses and CIDR blocks from `trusted_proxies`.
#[derive(Debug, Default, Clone)]
pub struct Proxies(Vec<(IpAddr, u8)>);

impl Proxies {
    pub fn parse(list: &[String]) -> anyhow::Result<Proxies> {
        let mut out = Vec::new();
        for item in list {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item.as_str(), None),
            };
            let addr: IpAddr = addr
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("trusted_proxies: `{item}` is not an address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b.trim().parse::<u8>().ok().filter(|b| *b <= max),
                None => Some(max),
            };
            let bits =
                bits.ok_or_else(|| anyhow::anyhow!("trusted_proxies: `{item}` has a bad prefix length"))?;
            out.push((addr, bits));
        }
        Ok(Proxies(out))
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|&(net, bits)| in_block(ip, canonical(net), bits))
    }

    /// The client of a request that arrived from `peer`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let entries = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let all: Vec<&str> = entries.flat_map(|v| v.split(',')).map(str::trim).collect();
        for entry in all.iter().rev() {
            // An entry that is not an address ends the chain we can believe.
            let Ok(ip) = entry.parse::<IpAddr>() else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits as u32) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits as u32) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn the_rightmost_untrusted_entry_counts_and_only_from_a_trusted_peer() {
        let p = Proxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // From an untrusted peer the header is ignored.
        assert_eq!(p.client(ip("203.0.113.5"), &xff("198.51.100.1")), ip("203.0.113.5"));
        // nginx appended the real client; what the client forged is to its left.
        assert_eq!(p.client(ip("127.0.0.1"), &xff("6.6.6.6, 203.0.113.7")), ip("203.0.113.7"));
        // Trusted hops are skipped.
        assert_eq!(p.client(ip("127.0.0.1"), &xff("203.0.113.7, 10.1.2.3")), ip("203.0.113.7"));
        // No header: the proxy itself.
        assert_eq!(p.client(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
        // Garbage ends the chain at the last believable hop.
        assert_eq!(p.client(ip("127.0.0.1"), &xff("203.0.113.7, junk, 10.0.0.2")), ip("10.0.0.2"));
        assert_eq!(p.client(ip("::ffff:127.0.0.1"), &xff("203.0.113.9")), ip("203.0.113.9"));
        assert!(Proxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(Proxies::parse(&["nope".into()]).is_err());
    }
}
