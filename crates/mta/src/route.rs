//! Where mail for a domain goes (RFC 5321 §5.1): the relay map, then MX
//! records (by preference, shuffled among equals), the implicit MX, the
//! null MX of RFC 7505; and the addresses to try, both families.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::outcome::Status;

/// The first hop for a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Target {
    /// A fixed host (relay map, smarthost, or an address literal domain):
    /// no MX look-up.
    Host {
        /// A name or an IP address.
        host: String,
        /// The TCP port.
        port: u16,
    },
    /// The domain's mail exchangers, found through DNS.
    Mx {
        /// The recipient domain, lower case.
        domain: String,
    },
}

impl Target {
    /// For logs: `relay mail.example:2525` or `mx example.org`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Host { host, port } => format!("relay {host}:{port}"),
            Target::Mx { domain } => format!("mx {domain}"),
        }
    }
}

/// One address to try, with the host name it came from (the DSN's
/// `Remote-MTA` and the TLS server name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// The MX or relay host name (or the IP address as text).
    pub(crate) host: String,
    /// Where to connect.
    pub(crate) addr: SocketAddr,
}

/// Why no address could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteFailure {
    /// True when retrying cannot help (NXDOMAIN, null MX, mail loop).
    pub(crate) permanent: bool,
    /// The RFC 3463 status for the DSN.
    pub(crate) status: Status,
    /// An SMTP-style reply when one applies (null MX: `556 5.1.10 …`).
    pub(crate) reply: Option<String>,
    /// One line for logs, the queue and the bounce text.
    pub(crate) text: String,
}

impl RouteFailure {
    fn permanent(status: Status, text: String) -> RouteFailure {
        RouteFailure {
            permanent: true,
            status,
            reply: None,
            text,
        }
    }

    fn temporary(status: Status, text: String) -> RouteFailure {
        RouteFailure {
            permanent: false,
            status,
            reply: None,
            text,
        }
    }
}

/// Routes domains: owns the relay map and the DNS resolver.
pub(crate) struct Router {
    relay_map: Vec<(String, String, u16)>,
    smtp_port: u16,
    hostname: String,
    resolver: TokioResolver,
}

impl Router {
    /// A router. `relay_map` entries must already be valid
    /// ([`parse_host_port`]); invalid ones are reported by the caller.
    pub(crate) fn new(
        relay_map: Vec<(String, String, u16)>,
        smtp_port: u16,
        hostname: &str,
        dns: Option<SocketAddr>,
        dns_timeout: Duration,
    ) -> Result<Router, NetError> {
        Ok(Router {
            relay_map,
            smtp_port,
            hostname: normalize(hostname),
            resolver: build_resolver(dns, dns_timeout)?,
        })
    }

    /// The first hop for `domain` (lower case): an exact relay-map entry,
    /// then an address literal, then the `*` smarthost, else MX.
    pub(crate) fn target(&self, domain: &str) -> Target {
        let domain = normalize(domain);
        let fixed = |pattern: &str| {
            self.relay_map
                .iter()
                .find(|(d, _, _)| d.eq_ignore_ascii_case(pattern))
                .map(|(_, host, port)| Target::Host {
                    host: host.clone(),
                    port: *port,
                })
        };
        if let Some(target) = fixed(&domain) {
            return target;
        }
        // RFC 5321 §5.1: an address literal is delivered to that address.
        if let Some(ip) = literal_ip(&domain) {
            return Target::Host {
                host: ip.to_string(),
                port: self.smtp_port,
            };
        }
        fixed("*").unwrap_or(Target::Mx { domain })
    }

    /// Every address to try for `target`, in order.
    pub(crate) async fn candidates(&self, target: &Target) -> Result<Vec<Candidate>, RouteFailure> {
        match target {
            Target::Host { host, port } => {
                let addrs = match host.parse::<IpAddr>() {
                    Ok(ip) => vec![ip],
                    Err(_) => match self.addresses(host).await? {
                        addrs if addrs.is_empty() => {
                            return Err(RouteFailure::temporary(
                                Status::new(4, 4, 4),
                                format!("relay host {host} has no address"),
                            ));
                        }
                        addrs => addrs,
                    },
                };
                Ok(addrs
                    .into_iter()
                    .map(|ip| Candidate {
                        host: host.clone(),
                        addr: SocketAddr::new(ip, *port),
                    })
                    .collect())
            }
            Target::Mx { domain } => self.mx_candidates(domain).await,
        }
    }

    async fn mx_candidates(&self, domain: &str) -> Result<Vec<Candidate>, RouteFailure> {
        let name = fqdn(domain).ok_or_else(|| {
            RouteFailure::permanent(
                Status::new(5, 1, 2),
                format!("invalid recipient domain {domain}"),
            )
        })?;
        let hosts = match self.resolver.lookup(name, RecordType::MX).await {
            Ok(lookup) => {
                let records = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                if records.is_empty() {
                    // An answer with only a CNAME chain and no MX.
                    vec![domain.to_string()]
                } else {
                    order_mx(records, &self.hostname, &mut rand::rng())
                        .map_err(|e| e.into_failure(domain))?
                }
            }
            Err(error) if error.is_nx_domain() => {
                return Err(RouteFailure::permanent(
                    Status::new(5, 1, 2),
                    format!("domain {domain} does not exist (NXDOMAIN)"),
                ));
            }
            // RFC 5321 §5.1: no MX records → the domain itself is the
            // implicit MX, preference 0.
            Err(error) if error.is_no_records_found() => vec![domain.to_string()],
            Err(error) => return Err(dns_failure(domain, "MX", &error)),
        };
        let implicit = hosts.len() == 1 && hosts[0] == domain;
        let mut candidates = Vec::new();
        let mut last_error = None;
        for host in hosts {
            match self.addresses(&host).await {
                Ok(addrs) => candidates.extend(addrs.into_iter().map(|ip| Candidate {
                    host: host.clone(),
                    addr: SocketAddr::new(ip, self.smtp_port),
                })),
                Err(failure) => last_error = Some(failure),
            }
        }
        if candidates.is_empty() {
            return Err(match last_error {
                Some(failure) => failure,
                None if implicit => RouteFailure::permanent(
                    Status::new(5, 4, 4),
                    format!("domain {domain} has no MX and no address records"),
                ),
                None => RouteFailure::temporary(
                    Status::new(4, 4, 4),
                    format!("no address for any mail exchanger of {domain}"),
                ),
            });
        }
        Ok(candidates)
    }

    /// A host's addresses: AAAA and A looked up together and interleaved
    /// (IPv6 first), so a failure of one family falls through to the
    /// other. Empty when the host has neither; an error only when both
    /// look-ups failed for another reason than "no such records".
    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, RouteFailure> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let Some(name) = fqdn(host) else {
            return Ok(Vec::new());
        };
        let (v6, v4) = tokio::join!(
            self.resolver.lookup(name.clone(), RecordType::AAAA),
            self.resolver.lookup(name, RecordType::A),
        );
        let collect = |result: Result<hickory_resolver::lookup::Lookup, NetError>| match result {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })
                .collect::<Vec<_>>()),
            Err(error) if error.is_no_records_found() => Ok(Vec::new()),
            Err(error) => Err(error),
        };
        match (collect(v6), collect(v4)) {
            (Err(error), Err(_)) => Err(dns_failure(host, "A/AAAA", &error)),
            (v6, v4) => Ok(interleave(v6.unwrap_or_default(), v4.unwrap_or_default())),
        }
    }
}

/// Parses `host:port`, `[v6]:port` or `v6-literal` forms of a relay.
pub(crate) fn parse_host_port(value: &str) -> Option<(String, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|&p| p != 0)?;
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner.parse::<IpAddr>().ok()?.to_string(),
        None if host.contains(':') => return None,
        None if host.is_empty() => return None,
        None => host.trim_end_matches('.').to_ascii_lowercase(),
    };
    Some((host, port))
}

/// Why an MX set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MxError {
    /// RFC 7505: the single MX `.` — the domain accepts no mail.
    NullMx,
    /// RFC 5321 §5.1: we are the best MX ourselves, and nothing is better.
    Loop,
}

impl MxError {
    fn into_failure(self, domain: &str) -> RouteFailure {
        match self {
            // RFC 7505 §4.2: "556 5.1.10 Recipient address has null MX".
            MxError::NullMx => RouteFailure {
                permanent: true,
                status: Status::new(5, 1, 10),
                reply: Some("556 5.1.10 Recipient address has null MX".to_string()),
                text: format!("556 5.1.10 Recipient address has null MX ({domain})"),
            },
            MxError::Loop => RouteFailure::permanent(
                Status::new(5, 4, 6),
                format!("mail for {domain} loops back to myself"),
            ),
        }
    }
}

/// Orders MX records (RFC 5321 §5.1): by preference, lowest first, with
/// equal preferences shuffled so load spreads. Host names come back in
/// lower case without the final dot.
///
/// A lone `.` is the null MX (RFC 7505 §3). A `.` among other records
/// breaks RFC 7505 ("MUST NOT" publish both) and is ignored. When our own
/// name is among the exchangers, it and every exchanger of equal or
/// higher preference are dropped (RFC 5321 §5.1), which is a loop when
/// nothing remains.
pub(crate) fn order_mx(
    records: Vec<(u16, String)>,
    hostname: &str,
    rng: &mut impl Rng,
) -> Result<Vec<String>, MxError> {
    let is_root = |host: &str| host.is_empty() || host == ".";
    if records.len() == 1 && is_root(&records[0].1) {
        return Err(MxError::NullMx);
    }
    let mut records: Vec<(u16, String)> = records
        .into_iter()
        .filter(|(_, host)| !is_root(host))
        .map(|(pref, host)| (pref, normalize(&host)))
        .collect();
    if records.is_empty() {
        return Err(MxError::NullMx);
    }
    let me = normalize(hostname);
    if let Some(own) = records
        .iter()
        .filter(|(_, h)| *h == me)
        .map(|(p, _)| *p)
        .min()
    {
        records.retain(|(pref, _)| *pref < own);
        if records.is_empty() {
            return Err(MxError::Loop);
        }
    }
    records.shuffle(rng);
    // Stable: the shuffle order survives among equal preferences.
    records.sort_by_key(|(pref, _)| *pref);
    let mut hosts: Vec<String> = Vec::with_capacity(records.len());
    for (_, host) in records {
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    Ok(hosts)
}

/// The resolver shared with mail authentication (same `--dns`, same
/// timeout).
fn build_resolver(dns: Option<SocketAddr>, timeout: Duration) -> Result<TokioResolver, NetError> {
    mailroom_mailauth::dns::resolver(dns, timeout)
}

fn dns_failure(name: &str, kind: &str, error: &NetError) -> RouteFailure {
    RouteFailure::temporary(
        Status::new(4, 4, 3),
        format!("DNS {kind} look-up for {name} failed: {error}"),
    )
}

/// A fully qualified name for a look-up (the final dot keeps the search
/// list out of it); IDNs become A-labels.
fn fqdn(name: &str) -> Option<Name> {
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        return None;
    }
    Name::from_utf8(format!("{name}.")).ok()
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The IP of a domain literal, `[192.0.2.1]` or `[IPv6:2001:db8::1]`
/// (RFC 5321 §4.1.3).
fn literal_ip(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .strip_prefix("ipv6:")
        .or_else(|| inner.strip_prefix("IPv6:"))
        .unwrap_or(inner);
    inner.parse().ok()
}

/// `v6[0], v4[0], v6[1], v4[1], …`: a broken family costs one failed
/// connect per round, not the whole list.
fn interleave(v6: Vec<IpAddr>, v4: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn records(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, h)| (*p, h.to_string())).collect()
    }

    type Row<'a> = (&'a [(u16, &'a str)], Result<&'a [&'a str], MxError>);

    #[test]
    fn mx_ordering_table() {
        let mut rng = StdRng::seed_from_u64(1);
        let table: &[Row<'_>] = &[
            (&[(10, "mx1.example.")], Ok(&["mx1.example"])),
            (
                &[(20, "b.example."), (10, "A.example.")],
                Ok(&["a.example", "b.example"]),
            ),
            (&[(0, ".")], Err(MxError::NullMx)),
            (&[(0, "")], Err(MxError::NullMx)),
            // A null MX mixed with real ones is ignored.
            (&[(0, "."), (10, "mx.example.")], Ok(&["mx.example"])),
            // Ourselves: drop us and anything no better.
            (
                &[(10, "a.example."), (20, "me.example."), (30, "c.example.")],
                Ok(&["a.example"]),
            ),
            (
                &[(10, "me.example."), (20, "c.example.")],
                Err(MxError::Loop),
            ),
            (
                &[(10, "x.example."), (10, "x.example.")],
                Ok(&["x.example"]),
            ),
        ];
        for (input, want) in table {
            let got = order_mx(records(input), "ME.example", &mut rng);
            let want = want
                .clone()
                .map(|hosts| hosts.iter().map(|h| h.to_string()).collect());
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn equal_preferences_are_shuffled_but_stay_behind_better_ones() {
        let input = records(&[
            (10, "a."),
            (10, "b."),
            (10, "c."),
            (5, "first."),
            (50, "last."),
        ]);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..64 {
            let hosts = order_mx(input.clone(), "me", &mut StdRng::seed_from_u64(seed)).unwrap();
            assert_eq!(hosts.first().map(String::as_str), Some("first"));
            assert_eq!(hosts.last().map(String::as_str), Some("last"));
            seen.insert(hosts[1..4].to_vec());
        }
        assert!(seen.len() > 1, "never shuffled");
    }

    #[test]
    fn host_port_table() {
        let table = [
            ("mail.example:2525", Some(("mail.example", 2525))),
            ("Mail.Example.:25", Some(("mail.example", 25))),
            ("127.0.0.1:25", Some(("127.0.0.1", 25))),
            ("[::1]:2525", Some(("::1", 2525))),
            ("[not-ip]:25", None),
            ("::1:25", None),
            ("mail.example", None),
            ("mail.example:0", None),
            ("mail.example:99999", None),
            (":25", None),
        ];
        for (input, want) in table {
            let got = parse_host_port(input);
            assert_eq!(got.as_ref().map(|(h, p)| (h.as_str(), *p)), want, "{input}");
        }
    }

    #[test]
    fn interleaves_families() {
        let v6: Vec<IpAddr> = vec!["::1".parse().unwrap(), "::2".parse().unwrap()];
        let v4: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        let got = interleave(v6, v4);
        let got: Vec<String> = got.iter().map(|ip| ip.to_string()).collect();
        assert_eq!(got, ["::1", "127.0.0.1", "::2"]);
    }

    #[test]
    fn literals() {
        assert_eq!(literal_ip("[192.0.2.1]"), "192.0.2.1".parse().ok());
        assert_eq!(literal_ip("[ipv6:2001:db8::1]"), "2001:db8::1".parse().ok());
        assert_eq!(literal_ip("example.org"), None);
    }
}
