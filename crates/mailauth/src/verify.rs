//! Inbound verification: SPF on HELO and MAIL FROM (RFC 7208 §2.3, §2.4),
//! DKIM (RFC 6376 §6), DMARC alignment and policy (RFC 7489 §6.6), the
//! `Authentication-Results` field (RFC 8601) and what to do with the
//! message.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_resolver::TokioResolver;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput, DmarcResult,
    MX, MessageAuthenticator, Parameters, RecordSet, SpfOutput, SpfResult, Txt,
};

use crate::cache::{Caches, TtlCache};

/// What to do when SPF says `fail` (the sending host is not authorized).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfFailAction {
    /// Record it in `Authentication-Results` and let DMARC decide:
    /// RFC 7489 §10.1 warns that refusing on SPF alone breaks forwarded
    /// mail whose DKIM signature would have passed DMARC.
    Mark,
    /// Refuse with `550 5.7.23` (RFC 7372) unless DMARC passes.
    Reject,
}

/// The receiving policy. Defaults are the safe ones named at each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Refuse mail failing DMARC for a domain publishing `p=reject`
    /// (`550 5.7.1`, RFC 7489 §6.7). Default: true.
    pub dmarc_reject: bool,
    /// Flag mail failing DMARC for a domain publishing `p=quarantine`
    /// with `X-Spam-Flag: YES` (accepted, for the user's filters).
    /// Default: true.
    pub dmarc_quarantine: bool,
    /// SPF `fail`: default [`SpfFailAction::Mark`].
    pub spf_fail: SpfFailAction,
    /// Answer `451 4.7.x` when a DNS failure (timeout, SERVFAIL) leaves
    /// the verdict open, instead of accepting with `temperror`.
    /// Default: true.
    pub temp_fail_on_dns_error: bool,
}

impl Default for VerifyPolicy {
    fn default() -> VerifyPolicy {
        VerifyPolicy {
            dmarc_reject: true,
            dmarc_quarantine: true,
            spf_fail: SpfFailAction::Mark,
            temp_fail_on_dns_error: true,
        }
    }
}

/// An SMTP reply the driver should give instead of accepting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `550` or `451`.
    pub code: u16,
    /// RFC 3463 enhanced status code, e.g. `(5, 7, 1)`.
    pub enhanced: (u8, u16, u16),
    /// The reply text.
    pub text: String,
}

/// What to do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accept it with the header.
    Accept,
    /// Accept it, flagged (DMARC `p=quarantine` failed).
    Quarantine,
    /// Refuse it for good.
    Reject(Refusal),
    /// Ask the client to try again later (a DNS failure).
    TempFail(Refusal),
}

/// The verification's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Header fields to put on top of the message, each ending in CRLF:
    /// `Authentication-Results`, and `X-Spam-Flag` when quarantined.
    pub header: Vec<u8>,
    /// Accept, flag, refuse or defer.
    pub decision: Decision,
    /// One line for the log: `spf=pass dkim=pass dmarc=pass`.
    pub summary: String,
}

/// The SMTP facts a verification needs.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The client's address.
    pub ip: IpAddr,
    /// The HELO/EHLO argument.
    pub helo: &'a str,
    /// The MAIL FROM address; empty for the null reverse path.
    pub mail_from: &'a str,
    /// The message as received (before our trace fields).
    pub message: &'a [u8],
}

/// Verifies inbound mail; shared by all sessions.
pub struct Verifier {
    auth: MessageAuthenticator,
    hostname: String,
    policy: VerifyPolicy,
    caches: Caches,
}

/// `mail-auth` parameters with our TTL caches.
type Cached<'x, P> = Parameters<
    'x,
    P,
    TtlCache<Box<str>, Txt>,
    TtlCache<Box<str>, RecordSet<MX>>,
    TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

/// DNS answers kept at most (per record type).
const CACHE_ENTRIES: usize = 16 * 1024;

impl Verifier {
    /// A verifier asking `resolver` (see [`crate::dns::resolver`]),
    /// writing `hostname` as the authserv-id.
    pub fn new(resolver: TokioResolver, hostname: &str, policy: VerifyPolicy) -> Verifier {
        Verifier {
            auth: MessageAuthenticator(resolver),
            hostname: hostname.trim_end_matches('.').to_ascii_lowercase(),
            policy,
            caches: Caches::new(CACHE_ENTRIES),
        }
    }

    /// The authserv-id written into `Authentication-Results`.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    fn params<P>(&self, params: P) -> Cached<'_, P> {
        Parameters::new(params)
            .with_txt_cache(&self.caches.txt)
            .with_mx_cache(&self.caches.mx)
            .with_ipv4_cache(&self.caches.ipv4)
            .with_ipv6_cache(&self.caches.ipv6)
            .with_ptr_cache(&self.caches.ptr)
    }

    /// Runs SPF, DKIM and DMARC for one message.
    pub async fn verify(&self, inbound: Inbound<'_>) -> Verdict {
        let helo = inbound.helo.trim().trim_end_matches('.');
        let ip = inbound.ip;
        // RFC 7208 §2.3: the HELO identity is checked when it is a domain
        // name; an address literal has no SPF record.
        let helo_is_domain = helo.contains('.')
            && !helo.starts_with('[')
            && helo.parse::<IpAddr>().is_err()
            && helo
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        let spf_helo = if helo_is_domain {
            self.auth
                .verify_spf(self.params(SpfParameters::verify_ehlo(ip, helo, &self.hostname)))
                .await
        } else {
            SpfOutput::default()
        };
        // RFC 7208 §2.4: MAIL FROM, or postmaster@HELO for the null path.
        let spf_from = if inbound.mail_from.is_empty() {
            spf_helo.clone()
        } else {
            self.auth
                .verify_spf(self.params(SpfParameters::verify_mail_from(
                    ip,
                    helo,
                    &self.hostname,
                    inbound.mail_from,
                )))
                .await
        };
        let mail_from_domain = match inbound.mail_from.rsplit_once('@') {
            Some((_, domain)) => domain.to_string(),
            None => helo.to_string(),
        };

        let parsed = AuthenticatedMessage::parse(inbound.message);
        let (dkim, dmarc, header_from) = match &parsed {
            Some(message) => {
                let dkim = self.auth.verify_dkim(self.params(message)).await;
                let dmarc = self
                    .auth
                    .verify_dmarc(self.params(DmarcParameters::new(
                        message,
                        &dkim,
                        &mail_from_domain,
                        &spf_from,
                    )))
                    .await;
                (dkim, Some(dmarc), message.from().to_string())
            }
            None => (Vec::new(), None, String::new()),
        };

        // RFC 6376 §6.1.3: a body hash that does not match is a failed
        // verification (PERMFAIL); mail-auth reports it as `neutral`, as
        // some providers do, but RFC 8601 §2.7.1 calls it `fail`.
        let shown: Vec<DkimOutput<'_>> = dkim
            .iter()
            .map(|output| match (output.result(), output.signature()) {
                (
                    DkimResult::Neutral(
                        error @ mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch),
                    ),
                    Some(signature),
                ) => DkimOutput::fail(error.clone()).with_signature(signature),
                _ => output.clone(),
            })
            .collect();
        let mut results = AuthenticationResults::new(&self.hostname)
            .with_dkim_results(&shown, &header_from)
            .with_spf_ehlo_result(&spf_helo, ip, helo)
            .with_spf_mailfrom_result(&spf_from, ip, inbound.mail_from, helo);
        if let Some(dmarc) = &dmarc {
            results = results.with_dmarc_result(dmarc);
        }
        let mut header = results.to_header().into_bytes();
        if dkim.is_empty() {
            // RFC 8601 §2.7.1: say that there was no signature, rather than
            // leave the method out.
            let at = b"Authentication-Results: ".len() + self.hostname.len();
            if header.get(at) == Some(&b';') {
                header.splice(at..at, b";\r\n\tdkim=none".iter().copied());
            }
        }

        let decision = self.decide(&spf_helo, &spf_from, &dkim, dmarc.as_ref());
        if decision == Decision::Quarantine {
            header.extend_from_slice(b"X-Spam-Flag: YES\r\n");
        }
        let summary = format!(
            "spf={} helo-spf={} dkim={} dmarc={}",
            spf_word(spf_from.result()),
            spf_word(spf_helo.result()),
            dkim_word(&shown),
            dmarc.as_ref().map_or("none", |d| dmarc_word(&d.result())),
        );
        Verdict {
            header,
            decision,
            summary,
        }
    }

    fn decide(
        &self,
        spf_helo: &SpfOutput,
        spf_from: &SpfOutput,
        dkim: &[DkimOutput<'_>],
        dmarc: Option<&DmarcOutput>,
    ) -> Decision {
        let dmarc_result = dmarc.map_or(DmarcResult::None, |d| d.result());
        if dmarc_result == DmarcResult::Pass {
            // A pass cannot be overturned by anything still unknown.
            return Decision::Accept;
        }
        let temp_dkim = dkim
            .iter()
            .any(|d| matches!(d.result(), DkimResult::TempError(_)));
        let temp = spf_helo.result() == SpfResult::TempError
            || spf_from.result() == SpfResult::TempError
            || temp_dkim
            || matches!(dmarc_result, DmarcResult::TempError(_));
        if temp && self.policy.temp_fail_on_dns_error {
            let (enhanced, what) = if spf_from.result() == SpfResult::TempError
                || spf_helo.result() == SpfResult::TempError
            {
                // RFC 7372 §3.2: SPF validation error.
                ((4, 7, 24), "SPF")
            } else {
                ((4, 7, 0), "DKIM/DMARC")
            };
            return Decision::TempFail(Refusal {
                code: 451,
                enhanced,
                text: format!("{what} DNS look-up failed; try again later"),
            });
        }
        if let Some(dmarc) = dmarc
            && matches!(dmarc_result, DmarcResult::Fail(_))
        {
            match dmarc.policy() {
                Policy::Reject if self.policy.dmarc_reject => {
                    return Decision::Reject(Refusal {
                        code: 550,
                        enhanced: (5, 7, 1),
                        text: format!(
                            "Message rejected per the DMARC policy of {}",
                            dmarc.domain()
                        ),
                    });
                }
                Policy::Quarantine if self.policy.dmarc_quarantine => {
                    return Decision::Quarantine;
                }
                _ => {}
            }
        }
        if self.policy.spf_fail == SpfFailAction::Reject
            && (spf_from.result() == SpfResult::Fail || spf_helo.result() == SpfResult::Fail)
        {
            // RFC 7372 §3.2: SPF validation failed.
            return Decision::Reject(Refusal {
                code: 550,
                enhanced: (5, 7, 23),
                text: format!(
                    "SPF check failed: {} is not allowed to send for {}",
                    "this host",
                    spf_from.domain()
                ),
            });
        }
        Decision::Accept
    }
}

fn spf_word(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_word(dkim: &[DkimOutput<'_>]) -> &'static str {
    // The best result among the signatures, as a summary.
    let rank = |r: &DkimResult| match r {
        DkimResult::Pass => 0,
        DkimResult::TempError(_) => 1,
        DkimResult::Fail(_) => 2,
        DkimResult::PermError(_) => 3,
        DkimResult::Neutral(_) => 4,
        DkimResult::None => 5,
    };
    match dkim.iter().map(|d| d.result()).min_by_key(|r| rank(r)) {
        Some(DkimResult::Pass) => "pass",
        Some(DkimResult::TempError(_)) => "temperror",
        Some(DkimResult::Fail(_)) => "fail",
        Some(DkimResult::PermError(_)) => "permerror",
        Some(DkimResult::Neutral(_)) => "neutral",
        Some(DkimResult::None) | None => "none",
    }
}

fn dmarc_word(result: &DmarcResult) -> &'static str {
    match result {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}
