//! Whole conversations against the session with a scripted driver: exact
//! transcripts, the same input in every chunking, and random input.

#![allow(clippy::unwrap_used)]

mod common;

use common::{MESSAGES, TIMESTAMP, check_well_formed, config, run};
use mailroom_pop3_proto::{Credential, Event, ServerConfig, ServerSession, apop_digest};
use proptest::prelude::*;

const CONVERSATION: &[u8] = b"CAPA\r\n\
USER alice\r\n\
PASS secret\r\n\
STAT\r\n\
LIST\r\n\
UIDL\r\n\
TOP 1 0\r\n\
TOP 2 1\r\n\
RETR 1\r\n\
RETR 3\r\n\
DELE 2\r\n\
LIST\r\n\
LIST 2\r\n\
RSET\r\n\
DELE 1\r\n\
NOOP\r\n\
QUIT\r\n";

fn expected_conversation() -> String {
    let [s1, s2, s3] = MESSAGES.map(|m| m.len());
    let total = s1 + s2 + s3;
    [
        format!("+OK mailroom POP3 server ready {TIMESTAMP}\r\n"),
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\nRESP-CODES\r\n\
         AUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nIMPLEMENTATION mailroom\r\n.\r\n"
            .to_owned(),
        "+OK send PASS\r\n".to_owned(),
        format!("+OK maildrop has 3 messages ({total} octets)\r\n"),
        format!("+OK 3 {total}\r\n"),
        format!("+OK 3 messages ({total} octets)\r\n1 {s1}\r\n2 {s2}\r\n3 {s3}\r\n.\r\n"),
        "+OK unique-id listing follows\r\n1 uid-1\r\n2 uid-2\r\n3 uid-3\r\n.\r\n".to_owned(),
        "+OK\r\nFrom: bob@example.com\r\nSubject: one\r\n\r\n.\r\n".to_owned(),
        "+OK\r\nSubject: two\r\n\r\nline 1\r\n.\r\n".to_owned(),
        format!(
            "+OK {s1} octets\r\nFrom: bob@example.com\r\nSubject: one\r\n\r\n\
             Hello Alice.\r\n..signature\r\n.\r\n"
        ),
        format!("+OK {s3} octets\r\nSubject: three\r\n\r\nno final line end\r\n.\r\n"),
        "+OK message 2 deleted\r\n".to_owned(),
        format!(
            "+OK 2 messages ({} octets)\r\n1 {s1}\r\n3 {s3}\r\n.\r\n",
            s1 + s3
        ),
        "-ERR no such message\r\n".to_owned(),
        format!("+OK maildrop has 3 messages ({total} octets)\r\n"),
        "+OK message 1 deleted\r\n".to_owned(),
        "+OK\r\n".to_owned(),
        "+OK 1 messages deleted\r\n".to_owned(),
    ]
    .concat()
}

fn expected_events() -> Vec<Event> {
    vec![
        Event::Login {
            user: "alice".into(),
            credential: Credential::Password("secret".into()),
        },
        Event::Retrieve {
            index: 0,
            top_lines: Some(0),
        },
        Event::Retrieve {
            index: 1,
            top_lines: Some(1),
        },
        Event::Retrieve {
            index: 0,
            top_lines: None,
        },
        Event::Retrieve {
            index: 2,
            top_lines: None,
        },
        Event::Quit { deletions: vec![0] },
    ]
}

#[test]
fn full_conversation_transcript() {
    let (wire, events) = run(config(), &[CONVERSATION]);
    assert_eq!(
        String::from_utf8(wire.clone()).unwrap(),
        expected_conversation()
    );
    assert_eq!(events, expected_events());
    assert_eq!(check_well_formed(&wire), Ok(18));
}

#[test]
fn full_conversation_in_every_chunking() {
    let expected = (expected_conversation().into_bytes(), expected_events());
    for pieces in mailroom_testkit::splittings(CONVERSATION, 100) {
        let got = run(config(), &pieces);
        assert!(
            got == expected,
            "split as {pieces:?}:\n{}",
            String::from_utf8_lossy(&got.0)
        );
    }
}

#[test]
fn apop_and_auth_plain_conversations_in_every_chunking() {
    let digest = apop_digest(TIMESTAMP, "tanstaaf");
    let apop = format!("APOP alice {digest}\r\nSTAT\r\nQUIT\r\n");
    let plain = "AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nSTAT\r\nQUIT\r\n";
    let plain_initial = "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nSTAT\r\nQUIT\r\n";
    let total: usize = MESSAGES.iter().map(|m| m.len()).sum();
    let login = format!("+OK maildrop has 3 messages ({total} octets)\r\n+OK 3 {total}\r\n");
    for (input, challenge) in [(apop.as_str(), ""), (plain, "+ \r\n"), (plain_initial, "")] {
        let expected = format!(
            "+OK mailroom POP3 server ready {TIMESTAMP}\r\n{challenge}{login}+OK 0 messages deleted\r\n"
        );
        for pieces in mailroom_testkit::splittings(input.as_bytes(), 30) {
            let (wire, events) = run(config(), &pieces);
            assert_eq!(String::from_utf8(wire).unwrap(), expected, "{pieces:?}");
            assert_eq!(events.len(), 2);
            assert!(matches!(&events[0], Event::Login { user, .. } if user == "alice"));
        }
    }
}

#[test]
fn failed_logins_then_success() {
    let input = b"USER bob\r\nPASS secret\r\nUSER locked\r\nPASS x\r\nUSER broken\r\nPASS x\r\n\
USER alice\r\nPASS secret\r\nQUIT\r\n";
    let expected = format!(
        "+OK mailroom POP3 server ready {TIMESTAMP}\r\n\
         +OK send PASS\r\n-ERR [AUTH] Authentication failed\r\n\
         +OK send PASS\r\n-ERR [IN-USE] Maildrop already locked\r\n\
         +OK send PASS\r\n-ERR [SYS/TEMP] Temporary failure, try again later\r\n\
         +OK send PASS\r\n+OK maildrop has 3 messages ({} octets)\r\n\
         +OK 0 messages deleted\r\n",
        MESSAGES.iter().map(|m| m.len()).sum::<usize>()
    );
    for pieces in mailroom_testkit::splittings(input, 30) {
        let (wire, events) = run(config(), &pieces);
        assert_eq!(String::from_utf8(wire).unwrap(), expected);
        assert_eq!(events.len(), 5);
    }
}

/// CVE-2011-0411 (STARTTLS command injection, here for POP3's STLS): a man
/// in the middle appends commands to the client's plaintext `STLS`; they
/// must never run inside the TLS session. See:
/// https://nvd.nist.gov/vuln/detail/CVE-2011-0411
#[test]
fn stls_discards_pipelined_plaintext() {
    let config = ServerConfig {
        stls: true,
        ..config()
    };
    let mut session = ServerSession::new(config);
    session.take_output();
    session.handle_input(b"STLS\r\nUSER alice\r\nPASS secret\r\n");
    assert_eq!(session.poll_event(), Some(Event::StartTls));
    assert_eq!(session.take_output(), b"+OK Begin TLS negotiation\r\n");
    // Plaintext handed over before the handshake completes is dropped too.
    session.handle_input(b"QUIT\r\n");
    assert_eq!(session.poll_event(), None);
    session.tls_established();
    assert!(session.is_tls());
    assert_eq!(session.poll_event(), None);
    assert_eq!(session.take_output(), b"");
    assert!(!session.is_closed());
    // The session works normally over TLS.
    session.handle_input(b"USER alice\r\n");
    assert_eq!(session.poll_event(), None);
    assert_eq!(session.take_output(), b"+OK send PASS\r\n");
}

/// Client input: plausible commands and junk, with every kind of line end.
fn client_input() -> impl Strategy<Value = Vec<u8>> {
    let digest = apop_digest(TIMESTAMP, "tanstaaf");
    let tokens: Vec<Vec<u8>> = [
        "USER alice",
        "USER bob",
        "PASS secret",
        "PASS wrong pass",
        &format!("APOP alice {digest}"),
        "APOP alice 00000000000000000000000000000000",
        "AUTH PLAIN",
        "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
        "AGFsaWNlAHNlY3JldA==",
        "AGFsaWNlAHdyb25n",
        "*",
        "=",
        "AUTH",
        "AUTH X",
        "CAPA",
        "STAT",
        "LIST",
        "LIST 1",
        "LIST 9",
        "UIDL",
        "UIDL 2",
        "RETR 1",
        "RETR 3",
        "TOP 1 0",
        "TOP 2 5",
        "TOP 1 -1",
        "DELE 1",
        "DELE 2",
        "RSET",
        "NOOP",
        "QUIT",
        "",
        "x",
        "list  1",
        ".",
        "\0",
        "\u{ff}",
        &"a".repeat(300),
    ]
    .iter()
    .map(|t| t.as_bytes().to_vec())
    .collect();
    let ends: [&[u8]; 5] = [b"\r\n", b"\r\n", b"\n", b"\r", b""];
    proptest::collection::vec((0..tokens.len(), 0..ends.len()), 0..40).prop_map(move |picks| {
        let mut input = Vec::new();
        for (token, end) in picks {
            input.extend_from_slice(&tokens[token]);
            input.extend_from_slice(ends[end]);
        }
        input
    })
}

fn chunk_at(input: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = points
        .iter()
        .copied()
        .filter(|&p| p < input.len())
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in points {
        chunks.push(input[start..p].to_vec());
        start = p;
    }
    chunks.push(input[start..].to_vec());
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Never panics, always answers with well-formed responses, and the
    /// chunking of the input never changes what happens.
    #[test]
    fn random_conversations(
        input in client_input(),
        points in proptest::collection::vec(0usize..600, 0..8),
        plaintext in any::<bool>(),
        tls in any::<bool>(),
        apop in any::<bool>(),
        max_errors in prop_oneof![Just(3u32), Just(1000u32)],
    ) {
        let config = ServerConfig {
            plaintext_login_allowed: plaintext,
            tls_active: tls,
            apop,
            max_errors,
            ..config()
        };
        let (wire, events) = run(config.clone(), &[&input]);
        prop_assert!(check_well_formed(&wire).is_ok(), "{:?}\n{}",
            check_well_formed(&wire), String::from_utf8_lossy(&wire));
        let chunks = chunk_at(&input, &points);
        let pieces: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let chunked = run(config, &pieces);
        prop_assert_eq!(chunked, (wire, events));
    }

    /// Arbitrary bytes, STLS offered: no panic, well-formed output.
    #[test]
    fn random_bytes(
        input in proptest::collection::vec(any::<u8>(), 0..512),
        stls in any::<bool>(),
    ) {
        let config = ServerConfig { stls, ..config() };
        let (wire, _) = run(config, &[&input]);
        prop_assert!(check_well_formed(&wire).is_ok(), "{:?}", check_well_formed(&wire));
    }
}
