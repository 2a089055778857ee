#![allow(clippy::unwrap_used)]
//! Signing and verifying against the in-process test DNS server: the
//! verdicts, the decisions, the TTL cache, DNS failures.

use std::net::IpAddr;
use std::time::Duration;

use mailroom_mailauth::keys::{self, Algorithm};
use mailroom_mailauth::{
    Decision, DomainKey, Inbound, Signer, SpfFailAction, Verifier, VerifyPolicy,
};
use mailroom_testkit::dns::{DnsServer, Zone};

const HOST: &str = "mx.receiver.test";
const LOCALHOST: &str = "127.0.0.1";

fn message(from: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@{from}>\r\nTo: bob@receiver.test\r\nSubject: test\r\n\
         Date: Thu, 27 Nov 2025 12:00:00 +0000\r\nMessage-ID: <1@{from}>\r\n\r\n{body}"
    )
    .into_bytes()
}

/// A signer for `domain` and the zone publishing its key, SPF and DMARC.
fn setup(domain: &str, algorithm: Algorithm, dmarc: &str) -> (Signer, Zone) {
    let pair = keys::generate(algorithm).unwrap();
    let txt = pair.key.txt_value();
    let signer = Signer::new([DomainKey {
        domain: domain.to_string(),
        selector: "sel".to_string(),
        key: pair.key,
    }]);
    let zone = Zone::new()
        .txt(&keys::record_name("sel", domain), &txt)
        .txt(domain, "v=spf1 ip4:127.0.0.1 -all")
        .txt(&format!("_dmarc.{domain}"), dmarc);
    (signer, zone)
}

fn verifier(dns: &DnsServer, policy: VerifyPolicy) -> Verifier {
    let resolver =
        mailroom_mailauth::dns::resolver(Some(dns.addr()), Duration::from_millis(500)).unwrap();
    Verifier::new(resolver, HOST, policy)
}

fn signed(signer: &Signer, message: &[u8]) -> Vec<u8> {
    let mut out = signer.sign(message, HOST).unwrap().expect("a signature");
    out.extend_from_slice(message);
    out
}

fn header(verdict: &mailroom_mailauth::Verdict) -> String {
    String::from_utf8(verdict.header.clone()).unwrap()
}

async fn run(verifier: &Verifier, from: &str, message: &[u8]) -> mailroom_mailauth::Verdict {
    verifier
        .verify(Inbound {
            ip: LOCALHOST.parse::<IpAddr>().unwrap(),
            helo: "mail.sender.test",
            mail_from: from,
            message,
        })
        .await
}

#[tokio::test]
async fn signed_mail_passes_spf_dkim_and_dmarc() {
    for algorithm in [Algorithm::Rsa, Algorithm::Ed25519] {
        let (signer, zone) = setup("sender.test", algorithm, "v=DMARC1; p=reject");
        let dns = DnsServer::start(zone);
        let verifier = verifier(&dns, VerifyPolicy::default());
        let mail = signed(&signer, &message("sender.test", "Hello.\r\n"));
        assert!(String::from_utf8_lossy(&mail).starts_with("DKIM-Signature: v=1; a="));
        assert!(String::from_utf8_lossy(&mail).contains(algorithm.signature_algorithm()));
        assert!(String::from_utf8_lossy(&mail).contains("c=relaxed/relaxed"));
        let verdict = run(&verifier, "alice@sender.test", &mail).await;
        let header = header(&verdict);
        assert!(
            header.starts_with("Authentication-Results: mx.receiver.test;"),
            "{header}"
        );
        assert!(
            header.contains("dkim=pass header.d=sender.test header.s=sel"),
            "{header}"
        );
        assert!(header.contains("spf=pass"), "{header}");
        assert!(
            header.contains("smtp.mailfrom=alice@sender.test"),
            "{header}"
        );
        assert!(
            header.contains("dmarc=pass header.from=sender.test"),
            "{header}"
        );
        assert!(header.ends_with("\r\n"));
        assert_eq!(verdict.decision, Decision::Accept);
        assert_eq!(
            verdict.summary,
            "spf=pass helo-spf=none dkim=pass dmarc=pass"
        );
    }
}

#[tokio::test]
async fn changed_body_fails_dkim_and_p_reject_refuses() {
    let (signer, zone) = setup("sender.test", Algorithm::Rsa, "v=DMARC1; p=reject");
    let dns = DnsServer::start(zone);
    let verifier = verifier(&dns, VerifyPolicy::default());
    let mail = signed(&signer, &message("sender.test", "Pay 10 EUR.\r\n"));
    let altered = String::from_utf8(mail)
        .unwrap()
        .replace("Pay 10 EUR.", "Pay 1000 EUR.")
        .into_bytes();
    // From an address SPF does not authorize: nothing aligned passes.
    let verdict = verifier
        .verify(Inbound {
            ip: "192.0.2.7".parse().unwrap(),
            helo: "evil.test",
            mail_from: "alice@sender.test",
            message: &altered,
        })
        .await;
    let header = header(&verdict);
    assert!(header.contains("dkim=fail"), "{header}");
    assert!(header.contains("spf=fail"), "{header}");
    assert!(header.contains("dmarc=fail"), "{header}");
    match verdict.decision {
        Decision::Reject(refusal) => {
            assert_eq!((refusal.code, refusal.enhanced), (550, (5, 7, 1)));
            assert!(refusal.text.contains("sender.test"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // The same with the policy switched off: accepted, verdicts recorded.
    let lenient = self::verifier(
        &dns,
        VerifyPolicy {
            dmarc_reject: false,
            ..VerifyPolicy::default()
        },
    );
    let verdict = lenient
        .verify(Inbound {
            ip: "192.0.2.7".parse().unwrap(),
            helo: "evil.test",
            mail_from: "alice@sender.test",
            message: &altered,
        })
        .await;
    assert_eq!(verdict.decision, Decision::Accept);
}

#[tokio::test]
async fn quarantine_flags_and_spf_fail_policy() {
    let (_, zone) = setup("sender.test", Algorithm::Rsa, "v=DMARC1; p=quarantine");
    let dns = DnsServer::start(zone);
    let unsigned = message("sender.test", "Hi.\r\n");
    let inbound = Inbound {
        ip: "192.0.2.7".parse().unwrap(),
        helo: "[192.0.2.7]",
        mail_from: "alice@sender.test",
        message: &unsigned,
    };
    let verdict = verifier(&dns, VerifyPolicy::default())
        .verify(inbound)
        .await;
    assert_eq!(verdict.decision, Decision::Quarantine);
    let header = header(&verdict);
    assert!(header.contains("dkim=none"), "{header}");
    assert!(header.contains("policy.dmarc=quarantine"), "{header}");
    assert!(header.ends_with("X-Spam-Flag: YES\r\n"), "{header}");

    let strict = verifier(
        &dns,
        VerifyPolicy {
            spf_fail: SpfFailAction::Reject,
            dmarc_quarantine: false,
            ..VerifyPolicy::default()
        },
    );
    match strict.verify(inbound).await.decision {
        Decision::Reject(refusal) => {
            assert_eq!((refusal.code, refusal.enhanced), (550, (5, 7, 23)))
        }
        other => panic!("expected an SPF rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn dns_failures_are_temporary_and_answers_are_cached() {
    let (signer, zone) = setup("sender.test", Algorithm::Rsa, "v=DMARC1; p=reject");
    let dns = DnsServer::start(zone.clone().timeout("_dmarc.sender.test"));
    let verifier = verifier(&dns, VerifyPolicy::default());
    // SPF and DKIM pass but the DMARC record cannot be read: no verdict.
    let mail = signed(&signer, &message("sender.test", "Hi.\r\n"));
    let verdict = run(&verifier, "alice@sender.test", &mail).await;
    match &verdict.decision {
        Decision::TempFail(refusal) => {
            assert_eq!(refusal.code, 451);
            assert_eq!(refusal.enhanced.0, 4);
            assert_eq!(refusal.enhanced.1, 7);
        }
        other => panic!(
            "expected a temporary failure, got {other:?}\n{}",
            header(&verdict)
        ),
    }
    // SERVFAIL on the SPF record of an unsigned message: SPF alone
    // decides DMARC, so that is temporary too.
    dns.set_zone(zone.clone().servfail("sender.test"));
    let verifier = self::verifier(&dns, VerifyPolicy::default());
    let unsigned = message("sender.test", "Again.\r\n");
    let verdict = run(&verifier, "bob@sender.test", &unsigned).await;
    match &verdict.decision {
        Decision::TempFail(refusal) => assert_eq!(refusal.enhanced, (4, 7, 24)),
        other => panic!(
            "expected a temporary failure, got {other:?}\n{}",
            header(&verdict)
        ),
    }
    // Signed, the DKIM pass settles DMARC: accepted with spf=temperror.
    let verdict = run(&verifier, "bob@sender.test", &mail).await;
    assert_eq!(verdict.decision, Decision::Accept, "{}", header(&verdict));
    assert!(
        header(&verdict).contains("spf=temperror"),
        "{}",
        header(&verdict)
    );

    // With the zone healthy, a pass; then the zone vanishes, and the
    // cached answers (TTL 60 s) still give the same verdict.
    dns.set_zone(zone);
    let verifier = self::verifier(&dns, VerifyPolicy::default());
    let verdict = run(&verifier, "alice@sender.test", &mail).await;
    assert_eq!(verdict.decision, Decision::Accept, "{}", header(&verdict));
    dns.set_zone(Zone::new());
    // An empty zone would give spf=none dkim=permerror dmarc=none: the
    // same passes again can only come from the cache. (Negative answers,
    // like the HELO name's NXDOMAIN, are asked again.)
    let again = run(&verifier, "alice@sender.test", &mail).await;
    assert_eq!(again.summary, verdict.summary);
    assert_eq!(again.summary, "spf=pass helo-spf=none dkim=pass dmarc=pass");
}

#[test]
fn only_our_mail_is_signed() {
    let (signer, _) = setup("sender.test", Algorithm::Rsa, "v=DMARC1; p=none");
    // Another domain: no key, no signature.
    assert!(
        signer
            .sign(&message("else.test", "x\r\n"), HOST)
            .unwrap()
            .is_none()
    );
    // A subdomain aligns (relaxed) with the parent's key.
    let sub = signer
        .sign(&message("lists.sender.test", "x\r\n"), HOST)
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&sub).contains("d=sender.test"));
    // Mail that came in from the internet (our Authentication-Results on
    // it) is not signed, whatever its From says.
    let mut inbound = b"Authentication-Results: mx.receiver.test; spf=fail\r\n".to_vec();
    inbound.extend_from_slice(&message("sender.test", "x\r\n"));
    assert!(signer.sign(&inbound, HOST).unwrap().is_none());
}
