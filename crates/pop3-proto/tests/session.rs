//! Every command in every state, with the exact bytes the client reads.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TIMESTAMP, config};
use mailroom_pop3_proto::{
    Credential, Event, LoginFailure, MessageEntry, ServerConfig, ServerSession, apop_digest,
};

/// A session with the greeting already taken.
fn fresh(config: ServerConfig) -> ServerSession {
    let mut session = ServerSession::new(config);
    session.take_output();
    session
}

/// Feeds `input` and polls once: the output so far and the event, if any
/// (left pending).
fn send(session: &mut ServerSession, input: &str) -> (String, Option<Event>) {
    session.handle_input(input.as_bytes());
    let event = session.poll_event();
    (String::from_utf8(session.take_output()).unwrap(), event)
}

/// Feeds `input`, which must not produce an event; returns the output.
fn reply(session: &mut ServerSession, input: &str) -> String {
    let (output, event) = send(session, input);
    assert_eq!(event, None, "after {input:?}");
    output
}

/// Three messages of 100, 200 and 300 octets.
fn listing() -> Vec<MessageEntry> {
    [100, 200, 300]
        .iter()
        .enumerate()
        .map(|(i, &size)| MessageEntry {
            uid: format!("u{}", i + 1),
            size,
        })
        .collect()
}

fn logged_in() -> ServerSession {
    let mut session = fresh(config());
    reply(&mut session, "USER alice\r\n");
    let (_, event) = send(&mut session, "PASS secret\r\n");
    assert!(matches!(event, Some(Event::Login { .. })));
    session.login_succeeded(listing());
    session.take_output();
    session
}

fn password(user: &str, password: &str) -> Option<Event> {
    Some(Event::Login {
        user: user.into(),
        credential: Credential::Password(password.into()),
    })
}

const CAPA_PLAINTEXT: &str = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\n\
RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nIMPLEMENTATION mailroom\r\n.\r\n";

// ---- greeting ----

#[test]
fn greeting_carries_the_apop_timestamp() {
    let mut session = ServerSession::new(config());
    assert_eq!(
        session.take_output(),
        format!("+OK mailroom POP3 server ready {TIMESTAMP}\r\n").as_bytes()
    );
    assert!(!session.is_tls());
    assert!(!session.in_transaction());
    assert_eq!(session.user(), None);
}

#[test]
fn greeting_without_apop() {
    for config in [
        ServerConfig {
            apop: false,
            ..config()
        },
        ServerConfig {
            greeting_timestamp: String::new(),
            ..config()
        },
        ServerConfig {
            greeting_timestamp: "<bad\r\n+OK injected>".into(),
            ..config()
        },
        ServerConfig::default(),
    ] {
        let mut session = ServerSession::new(config);
        assert_eq!(session.take_output(), b"+OK mailroom POP3 server ready\r\n");
        let digest = apop_digest(TIMESTAMP, "tanstaaf");
        assert_eq!(
            reply(&mut session, &format!("APOP alice {digest}\r\n")),
            "-ERR APOP not available\r\n"
        );
    }
}

// ---- AUTHORIZATION ----

#[test]
fn user_pass_login() {
    let mut session = fresh(config());
    assert_eq!(reply(&mut session, "USER alice\r\n"), "+OK send PASS\r\n");
    let (output, event) = send(&mut session, "PASS secret\r\n");
    assert_eq!(output, "");
    assert_eq!(event, password("alice", "secret"));
    assert!(session.is_awaiting_decision());
    // Nothing more happens until the driver decides.
    assert_eq!(send(&mut session, "STAT\r\n"), (String::new(), None));
    session.login_succeeded(listing());
    assert_eq!(
        session.take_output(),
        b"+OK maildrop has 3 messages (600 octets)\r\n"
    );
    assert_eq!(session.user(), Some("alice"));
    assert!(session.in_transaction());
    assert!(!session.is_awaiting_decision());
    // The STAT sent while the login was pending runs now.
    assert_eq!(session.poll_event(), None);
    assert_eq!(session.take_output(), b"+OK 3 600\r\n");
}

#[test]
fn user_never_reveals_whether_a_user_exists() {
    let mut session = fresh(config());
    for name in ["alice", "nobody", "root", "x"] {
        assert_eq!(
            reply(&mut session, &format!("USER {name}\r\n")),
            "+OK send PASS\r\n"
        );
    }
}

#[test]
fn pass_keeps_spaces() {
    let mut session = fresh(config());
    reply(&mut session, "USER alice\r\n");
    let (_, event) = send(&mut session, "PASS correct horse  battery \r\n");
    assert_eq!(event, password("alice", "correct horse  battery "));
}

#[test]
fn pass_must_follow_user() {
    let mut session = fresh(config());
    assert_eq!(
        reply(&mut session, "PASS secret\r\n"),
        "-ERR PASS must follow USER\r\n"
    );
    // Any other command in between forgets the USER (RFC 1939 §7).
    reply(&mut session, "USER alice\r\n");
    let output = reply(&mut session, "CAPA\r\nPASS secret\r\n");
    assert_eq!(
        output,
        format!("{CAPA_PLAINTEXT}-ERR PASS must follow USER\r\n")
    );
    // The latest USER wins.
    reply(&mut session, "USER bob\r\nUSER alice\r\n");
    let (_, event) = send(&mut session, "PASS secret\r\n");
    assert_eq!(event, password("alice", "secret"));
}

#[test]
fn login_failures() {
    let cases = [
        (
            LoginFailure::BadCredentials,
            "-ERR [AUTH] Authentication failed\r\n",
        ),
        (
            LoginFailure::InUse,
            "-ERR [IN-USE] Maildrop already locked\r\n",
        ),
        (
            LoginFailure::TemporaryFailure,
            "-ERR [SYS/TEMP] Temporary failure, try again later\r\n",
        ),
    ];
    for (why, expected) in cases {
        let mut session = fresh(config());
        reply(&mut session, "USER alice\r\n");
        send(&mut session, "PASS wrong\r\n");
        session.login_failed(why);
        assert_eq!(String::from_utf8(session.take_output()).unwrap(), expected);
        assert!(!session.in_transaction());
        assert_eq!(session.user(), None);
        // Back in AUTHORIZATION, the USER forgotten.
        assert_eq!(
            reply(&mut session, "PASS secret\r\n"),
            "-ERR PASS must follow USER\r\n"
        );
        assert_eq!(reply(&mut session, "USER alice\r\n"), "+OK send PASS\r\n");
    }
}

#[test]
fn plaintext_logins_need_tls() {
    let config = ServerConfig {
        plaintext_login_allowed: false,
        ..config()
    };
    let mut session = fresh(config.clone());
    let refused = "-ERR Plaintext authentication requires TLS\r\n";
    assert_eq!(reply(&mut session, "USER alice\r\n"), refused);
    assert_eq!(reply(&mut session, "PASS secret\r\n"), refused);
    assert_eq!(reply(&mut session, "AUTH PLAIN\r\n"), refused);
    assert_eq!(
        reply(&mut session, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        refused
    );
    assert_eq!(
        reply(&mut session, "AUTH\r\n"),
        "+OK List of SASL mechanisms follows\r\n.\r\n"
    );
    assert_eq!(
        reply(&mut session, "CAPA\r\n"),
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n\
         PIPELINING\r\nEXPIRE NEVER\r\nIMPLEMENTATION mailroom\r\n.\r\n"
    );
    // APOP sends no password, so it stays available.
    let digest = apop_digest(TIMESTAMP, "tanstaaf");
    let (_, event) = send(&mut session, &format!("APOP alice {digest}\r\n"));
    assert_eq!(
        event,
        Some(Event::Login {
            user: "alice".into(),
            credential: Credential::Apop { digest }
        })
    );

    // Implicit TLS allows them.
    let mut session = fresh(ServerConfig {
        tls_active: true,
        ..config
    });
    assert!(session.is_tls());
    assert_eq!(reply(&mut session, "USER alice\r\n"), "+OK send PASS\r\n");
    assert_eq!(reply(&mut session, "CAPA\r\n"), CAPA_PLAINTEXT);
}

#[test]
fn apop() {
    let mut session = fresh(config());
    let digest = apop_digest(TIMESTAMP, "tanstaaf");
    assert_eq!(digest, "c4c9334bac560ecc979e58001b3e22fb");
    let (output, event) = send(&mut session, &format!("APOP mrose {digest}\r\n"));
    assert_eq!(output, "");
    assert_eq!(
        event,
        Some(Event::Login {
            user: "mrose".into(),
            credential: Credential::Apop { digest }
        })
    );
    session.login_failed(LoginFailure::BadCredentials);
    assert_eq!(
        session.take_output(),
        b"-ERR [AUTH] Authentication failed\r\n"
    );
    assert_eq!(
        reply(
            &mut session,
            "APOP mrose C4C9334BAC560ECC979E58001B3E22FB\r\n"
        ),
        "-ERR Syntax: APOP name digest\r\n"
    );
    assert_eq!(
        reply(&mut session, "APOP mrose\r\n"),
        "-ERR Syntax: APOP name digest\r\n"
    );
}

#[test]
fn auth_plain_with_initial_response() {
    let mut session = fresh(config());
    let (output, event) = send(&mut session, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert_eq!(output, "");
    assert_eq!(event, password("alice", "secret"));
    session.login_succeeded(Vec::new());
    assert_eq!(
        session.take_output(),
        b"+OK maildrop has 0 messages (0 octets)\r\n"
    );
    assert_eq!(session.user(), Some("alice"));
}

#[test]
fn auth_plain_with_challenge() {
    let mut session = fresh(config());
    assert_eq!(reply(&mut session, "auth plain\r\n"), "+ \r\n");
    // authzid equal to authcid is fine: "alice\0alice\0secret".
    let (output, event) = send(&mut session, "YWxpY2UAYWxpY2UAc2VjcmV0\r\n");
    assert_eq!(output, "");
    assert_eq!(event, password("alice", "secret"));
}

#[test]
fn auth_plain_failures() {
    let rows: &[(&str, &str)] = &[
        (
            "AUTH PLAIN\r\n*\r\n",
            "+ \r\n-ERR Authentication cancelled\r\n",
        ),
        ("AUTH PLAIN =\r\n", "-ERR Malformed PLAIN response\r\n"),
        (
            "AUTH PLAIN\r\n\r\n",
            "+ \r\n-ERR Malformed PLAIN response\r\n",
        ),
        ("AUTH PLAIN\r\n=\r\n", "+ \r\n-ERR Invalid base64 data\r\n"),
        ("AUTH PLAIN *\r\n", "-ERR Invalid base64 data\r\n"),
        (
            "AUTH PLAIN AGFsaWNlAHNlY3JldA\r\n",
            "-ERR Invalid base64 data\r\n",
        ),
        (
            "AUTH PLAIN\r\nAGFsaWNl AHNlY3JldA==\r\n",
            "+ \r\n-ERR Invalid base64 data\r\n",
        ),
        // "alice\0secret": one NUL only.
        (
            "AUTH PLAIN YWxpY2UAc2VjcmV0\r\n",
            "-ERR Malformed PLAIN response\r\n",
        ),
        // "bob\0alice\0secret": bob may not act as alice.
        (
            "AUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==\r\n",
            "-ERR [AUTH] Authentication failed\r\n",
        ),
        (
            "AUTH CRAM-MD5\r\n",
            "-ERR Unrecognized authentication type\r\n",
        ),
        (
            "AUTH LOGIN\r\n",
            "-ERR Unrecognized authentication type\r\n",
        ),
        (
            "AUTH PLAIN\r\nAGFs\naWNl\r\n",
            "+ \r\n-ERR bare CR or LF in command line\r\n-ERR Unknown command\r\n",
        ),
    ];
    for (input, expected) in rows {
        let mut session = fresh(config());
        assert_eq!(&reply(&mut session, input), expected, "{input:?}");
        // The exchange is over: the next line is a command again.
        assert_eq!(
            reply(&mut session, "USER alice\r\n"),
            "+OK send PASS\r\n",
            "{input:?}"
        );
    }
}

#[test]
fn sasl_lines_may_exceed_the_command_limit() {
    let mut session = fresh(config());
    let secret = "s".repeat(400);
    // base64 of "\0alice\0" + 400 × 's': 407 bytes → 544 characters.
    let mut message = b"\0alice\0".to_vec();
    message.extend_from_slice(secret.as_bytes());
    let encoded = encode(&message);
    assert!(encoded.len() > 255);
    assert_eq!(reply(&mut session, "AUTH PLAIN\r\n"), "+ \r\n");
    let (output, event) = send(&mut session, &format!("{encoded}\r\n"));
    assert_eq!(output, "");
    assert_eq!(event, password("alice", &secret));

    // But not beyond the SASL limit.
    let mut session = fresh(config());
    assert_eq!(reply(&mut session, "AUTH PLAIN\r\n"), "+ \r\n");
    let long = "A".repeat(12_288);
    assert_eq!(
        reply(&mut session, &format!("{long}\r\nUSER alice\r\n")),
        "-ERR line too long\r\n+OK send PASS\r\n"
    );
}

#[test]
fn auth_lists_mechanisms() {
    let mut session = fresh(config());
    assert_eq!(
        reply(&mut session, "AUTH\r\n"),
        "+OK List of SASL mechanisms follows\r\nPLAIN\r\n.\r\n"
    );
}

#[test]
fn capa_in_authorization() {
    let mut session = fresh(config());
    assert_eq!(reply(&mut session, "CAPA\r\n"), CAPA_PLAINTEXT);
    let mut session = fresh(ServerConfig {
        implementation: "mailroom\r\nEVIL".into(),
        stls: true,
        ..config()
    });
    assert_eq!(
        reply(&mut session, "capa\r\n"),
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\nRESP-CODES\r\n\
         AUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nIMPLEMENTATION mailroomEVIL\r\nSTLS\r\n.\r\n"
    );
    let mut session = fresh(ServerConfig {
        implementation: String::new(),
        ..config()
    });
    assert!(!reply(&mut session, "CAPA\r\n").contains("IMPLEMENTATION"));
}

#[test]
fn stls() {
    let config = ServerConfig {
        stls: true,
        plaintext_login_allowed: false,
        ..config()
    };
    let mut session = fresh(config);
    assert_eq!(
        reply(&mut session, "USER alice\r\n"),
        "-ERR Plaintext authentication requires TLS\r\n"
    );
    assert_eq!(
        send(&mut session, "STLS\r\n"),
        (
            "+OK Begin TLS negotiation\r\n".to_owned(),
            Some(Event::StartTls)
        )
    );
    assert!(session.is_awaiting_decision());
    session.tls_established();
    assert!(session.is_tls());
    assert_eq!(
        reply(&mut session, "STLS\r\n"),
        "-ERR Command not permitted when TLS active\r\n"
    );
    // STLS is no longer offered; USER and PLAIN now are.
    assert_eq!(reply(&mut session, "CAPA\r\n"), CAPA_PLAINTEXT);
    assert_eq!(reply(&mut session, "USER alice\r\n"), "+OK send PASS\r\n");
}

#[test]
fn stls_forgets_user() {
    let mut session = fresh(ServerConfig {
        stls: true,
        ..config()
    });
    reply(&mut session, "USER alice\r\n");
    send(&mut session, "STLS\r\n");
    session.take_output();
    session.tls_established();
    assert_eq!(
        reply(&mut session, "PASS secret\r\n"),
        "-ERR PASS must follow USER\r\n"
    );
}

#[test]
fn stls_unavailable() {
    let mut session = fresh(config());
    assert_eq!(
        reply(&mut session, "STLS\r\n"),
        "-ERR STLS not available\r\n"
    );
    let mut session = fresh(ServerConfig {
        stls: true,
        tls_active: true,
        ..config()
    });
    assert_eq!(
        reply(&mut session, "STLS\r\n"),
        "-ERR Command not permitted when TLS active\r\n"
    );
    assert_eq!(reply(&mut session, "CAPA\r\n"), CAPA_PLAINTEXT);
}

#[test]
fn quit_in_authorization() {
    let mut session = fresh(config());
    assert_eq!(
        reply(&mut session, "QUIT\r\nNOOP\r\n"),
        "+OK mailroom POP3 server signing off\r\n"
    );
    assert!(session.is_closed());
    assert_eq!(reply(&mut session, "USER alice\r\n"), "");
}

#[test]
fn transaction_commands_before_login() {
    for command in [
        "STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL", "UIDL 1",
    ] {
        let mut session = fresh(config());
        assert_eq!(
            reply(&mut session, &format!("{command}\r\n")),
            "-ERR Command not valid before login\r\n",
            "{command}"
        );
    }
}

// ---- TRANSACTION ----

#[test]
fn stat_list_uidl() {
    let mut session = logged_in();
    assert_eq!(reply(&mut session, "STAT\r\n"), "+OK 3 600\r\n");
    assert_eq!(
        reply(&mut session, "LIST\r\n"),
        "+OK 3 messages (600 octets)\r\n1 100\r\n2 200\r\n3 300\r\n.\r\n"
    );
    assert_eq!(reply(&mut session, "LIST 2\r\n"), "+OK 2 200\r\n");
    assert_eq!(reply(&mut session, "list 03\r\n"), "+OK 3 300\r\n");
    assert_eq!(
        reply(&mut session, "UIDL\r\n"),
        "+OK unique-id listing follows\r\n1 u1\r\n2 u2\r\n3 u3\r\n.\r\n"
    );
    assert_eq!(reply(&mut session, "UIDL 3\r\n"), "+OK 3 u3\r\n");
    for missing in ["0", "4", "18446744073709551616"] {
        assert_eq!(
            reply(
                &mut session,
                &format!("LIST {missing}\r\nUIDL {missing}\r\n")
            ),
            "-ERR no such message\r\n-ERR no such message\r\n"
        );
    }
    assert_eq!(
        reply(&mut session, "LIST x\r\nUIDL -1\r\nSTAT 1\r\n"),
        "-ERR Syntax: LIST [msg]\r\n-ERR Syntax: UIDL [msg]\r\n-ERR Syntax: STAT\r\n"
    );
}

#[test]
fn empty_maildrop() {
    let mut session = fresh(config());
    reply(&mut session, "USER alice\r\n");
    send(&mut session, "PASS secret\r\n");
    session.login_succeeded(Vec::new());
    session.take_output();
    assert_eq!(
        reply(&mut session, "STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\n"),
        "+OK 0 0\r\n+OK 0 messages (0 octets)\r\n.\r\n+OK unique-id listing follows\r\n.\r\n\
         -ERR no such message\r\n"
    );
}

#[test]
fn bad_uids_cannot_break_lines() {
    let mut session = fresh(config());
    reply(&mut session, "USER alice\r\n");
    send(&mut session, "PASS secret\r\n");
    session.login_succeeded(vec![MessageEntry {
        uid: "a b\r\n.".into(),
        size: 1,
    }]);
    session.take_output();
    assert_eq!(
        reply(&mut session, "UIDL\r\nUIDL 1\r\n"),
        "+OK unique-id listing follows\r\n1 a_b__.\r\n.\r\n+OK 1 a_b__.\r\n"
    );
}

#[test]
fn retr() {
    let mut session = logged_in();
    let (output, event) = send(&mut session, "RETR 2\r\n");
    assert_eq!(output, "");
    assert_eq!(
        event,
        Some(Event::Retrieve {
            index: 1,
            top_lines: None
        })
    );
    assert!(session.in_transaction());
    session.retrieve_ok();
    assert_eq!(session.take_output(), b"+OK 200 octets\r\n");
    let (_, event) = send(&mut session, "RETR 3\r\n");
    assert!(event.is_some());
    session.retrieve_failed();
    assert_eq!(
        session.take_output(),
        b"-ERR [SYS/TEMP] Message unavailable, try again later\r\n"
    );
    assert_eq!(
        reply(&mut session, "RETR 4\r\nRETR 0\r\nRETR\r\n"),
        "-ERR no such message\r\n-ERR no such message\r\n-ERR Syntax: RETR msg\r\n"
    );
}

#[test]
fn top() {
    let mut session = logged_in();
    let (output, event) = send(&mut session, "TOP 1 10\r\n");
    assert_eq!(output, "");
    assert_eq!(
        event,
        Some(Event::Retrieve {
            index: 0,
            top_lines: Some(10)
        })
    );
    session.retrieve_ok();
    assert_eq!(session.take_output(), b"+OK\r\n");
    let (_, event) = send(&mut session, "TOP 3 0\r\n");
    assert_eq!(
        event,
        Some(Event::Retrieve {
            index: 2,
            top_lines: Some(0)
        })
    );
    session.retrieve_ok();
    session.take_output();
    assert_eq!(
        reply(&mut session, "TOP 1 -1\r\nTOP 1\r\nTOP 4 0\r\n"),
        "-ERR Syntax: TOP msg n\r\n-ERR Syntax: TOP msg n\r\n-ERR no such message\r\n"
    );
}

#[test]
fn dele_and_rset() {
    let mut session = logged_in();
    assert_eq!(
        reply(&mut session, "DELE 2\r\n"),
        "+OK message 2 deleted\r\n"
    );
    assert_eq!(
        reply(
            &mut session,
            "DELE 2\r\nRETR 2\r\nTOP 2 0\r\nLIST 2\r\nUIDL 2\r\n"
        ),
        "-ERR no such message\r\n".repeat(5)
    );
    assert_eq!(
        reply(&mut session, "STAT\r\nLIST\r\nUIDL\r\n"),
        "+OK 2 400\r\n+OK 2 messages (400 octets)\r\n1 100\r\n3 300\r\n.\r\n\
         +OK unique-id listing follows\r\n1 u1\r\n3 u3\r\n.\r\n"
    );
    assert_eq!(
        reply(&mut session, "RSET\r\n"),
        "+OK maildrop has 3 messages (600 octets)\r\n"
    );
    assert_eq!(reply(&mut session, "LIST 2\r\n"), "+OK 2 200\r\n");
}

#[test]
fn noop_and_capa_in_transaction() {
    let mut session = logged_in();
    assert_eq!(reply(&mut session, "NOOP\r\n"), "+OK\r\n");
    assert_eq!(reply(&mut session, "NOOP x\r\n"), "-ERR Syntax: NOOP\r\n");
    // RFC 2449 §5: the same list in both states.
    assert_eq!(reply(&mut session, "CAPA\r\n"), CAPA_PLAINTEXT);
}

#[test]
fn authorization_commands_after_login() {
    let digest = apop_digest(TIMESTAMP, "tanstaaf");
    for command in [
        "USER alice".to_owned(),
        "PASS secret".to_owned(),
        format!("APOP alice {digest}"),
        "AUTH".to_owned(),
        "AUTH PLAIN".to_owned(),
        "AUTH PLAIN AGFsaWNlAHNlY3JldA==".to_owned(),
        "STLS".to_owned(),
    ] {
        let mut session = logged_in();
        assert_eq!(
            reply(&mut session, &format!("{command}\r\n")),
            "-ERR Command not valid after login\r\n",
            "{command}"
        );
        assert_eq!(session.user(), Some("alice"));
    }
}

#[test]
fn quit_in_transaction_enters_update() {
    let mut session = logged_in();
    reply(&mut session, "DELE 3\r\nDELE 1\r\n");
    let (output, event) = send(&mut session, "QUIT\r\nNOOP\r\n");
    assert_eq!(output, "");
    assert_eq!(
        event,
        Some(Event::Quit {
            deletions: vec![0, 2]
        })
    );
    assert!(!session.in_transaction());
    assert!(!session.is_closed());
    // Nothing runs during UPDATE.
    assert_eq!(session.poll_event(), None);
    assert_eq!(session.take_output(), b"");
    session.update_finished(true);
    assert_eq!(session.take_output(), b"+OK 2 messages deleted\r\n");
    assert!(session.is_closed());
    assert_eq!(session.poll_event(), None);
    assert_eq!(session.take_output(), b"");
}

#[test]
fn quit_without_deletions_and_failed_update() {
    let mut session = logged_in();
    let (_, event) = send(&mut session, "QUIT\r\n");
    assert_eq!(event, Some(Event::Quit { deletions: vec![] }));
    session.update_finished(false);
    assert_eq!(
        session.take_output(),
        b"-ERR [SYS/TEMP] some deleted messages not removed\r\n"
    );
    assert!(session.is_closed());
}

// ---- framing, limits, lifecycle ----

/// Every row, in a logged-in session, with a good CRLF and with the bad line
/// ends: the bad ones get the framing error and the session stays in sync.
#[test]
fn commands_with_every_line_end() {
    let rows: &[(&str, &str)] = &[
        ("STAT", "+OK 3 600\r\n"),
        ("stat", "+OK 3 600\r\n"),
        ("LIST 1", "+OK 1 100\r\n"),
        ("LIST  1", "-ERR Syntax: LIST [msg]\r\n"),
        ("LIST 1 ", "-ERR Syntax: LIST [msg]\r\n"),
        ("NOOP", "+OK\r\n"),
        ("DELE 1", "+OK message 1 deleted\r\n"),
        ("UIDL 1", "+OK 1 u1\r\n"),
        ("FOO", "-ERR Unknown command\r\n"),
        ("", "-ERR Unknown command\r\n"),
        ("NO\0OP", "-ERR Invalid characters in command\r\n"),
    ];
    let bare = "-ERR bare CR or LF in command line\r\n";
    for (command, expected) in rows {
        for (end, expected) in [("\r\n", *expected), ("\n", bare), ("\r\r\n", bare)] {
            let mut session = logged_in();
            let input = format!("{command}{end}NOOP\r\n");
            assert_eq!(
                reply(&mut session, &input),
                format!("{expected}+OK\r\n"),
                "{input:?}"
            );
        }
    }
    // A CR inside the line.
    let mut session = logged_in();
    assert_eq!(
        reply(&mut session, "NO\rOP\r\nNOOP\r\n"),
        format!("{bare}+OK\r\n")
    );
}

#[test]
fn command_line_limit_is_255_octets() {
    // RFC 2449 §4: 255 octets including CRLF.
    let mut session = fresh(config());
    reply(&mut session, "USER alice\r\n");
    let password = "p".repeat(255 - "PASS \r\n".len());
    let (output, event) = send(&mut session, &format!("PASS {password}\r\n"));
    assert_eq!(output, "");
    assert_eq!(event, password_event(&password));

    let mut session = fresh(config());
    reply(&mut session, "USER alice\r\n");
    assert_eq!(
        reply(&mut session, &format!("PASS {password}p\r\nNOOP\r\n")),
        "-ERR line too long\r\n-ERR Command not valid before login\r\n"
    );
}

fn password_event(password: &str) -> Option<Event> {
    self::password("alice", password)
}

#[test]
fn long_line_is_discarded_to_its_end() {
    let mut session = logged_in();
    let long = "X".repeat(1000);
    // Fed in pieces: one error, and the tail is not read as a command.
    session.handle_input(long.as_bytes());
    assert_eq!(session.poll_event(), None);
    session.handle_input(b"STAT");
    assert_eq!(session.poll_event(), None);
    session.handle_input(b"\r\nNOOP\r\n");
    assert_eq!(session.poll_event(), None);
    assert_eq!(session.take_output(), b"-ERR line too long\r\n+OK\r\n");
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let mut session = fresh(config());
    session
        .handle_input(b"CAPA\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\nNOOP\r\nQUIT\r\n");
    assert_eq!(session.poll_event(), password("alice", "secret"));
    session.login_succeeded(listing());
    assert_eq!(
        session.poll_event(),
        Some(Event::Retrieve {
            index: 0,
            top_lines: None
        })
    );
    session.retrieve_ok();
    let mut expected = CAPA_PLAINTEXT.to_owned();
    expected.push_str("+OK send PASS\r\n+OK maildrop has 3 messages (600 octets)\r\n");
    expected.push_str("+OK 3 600\r\n+OK 100 octets\r\n");
    assert_eq!(String::from_utf8(session.take_output()).unwrap(), expected);
    assert_eq!(
        session.poll_event(),
        Some(Event::Quit { deletions: vec![] })
    );
    assert_eq!(session.take_output(), b"+OK\r\n");
}

#[test]
fn a_large_pipelined_read_takes_linear_time() {
    // 100,000 commands in one read: with a buffer shifted after every line
    // this would move ~30 GB; it must take well under a second.
    let mut session = logged_in();
    session.handle_input("NOOP\r\n".repeat(100_000).as_bytes());
    assert_eq!(session.poll_event(), None);
    assert_eq!(session.take_output(), "+OK\r\n".repeat(100_000).as_bytes());
}

#[test]
fn too_many_errors_closes() {
    let mut session = fresh(ServerConfig {
        max_errors: 3,
        ..config()
    });
    assert_eq!(
        reply(&mut session, "FOO\r\nSTAT\r\nBAR\n"),
        "-ERR Unknown command\r\n-ERR Command not valid before login\r\n\
         -ERR bare CR or LF in command line; too many errors, closing\r\n"
    );
    assert!(session.is_closed());
    assert_eq!(reply(&mut session, "USER alice\r\n"), "");
}

#[test]
fn failed_logins_count_as_errors() {
    let mut session = fresh(ServerConfig {
        max_errors: 2,
        ..config()
    });
    for attempt in 0..2 {
        reply(&mut session, "USER alice\r\n");
        send(&mut session, "PASS guess\r\n");
        session.login_failed(LoginFailure::BadCredentials);
        let output = String::from_utf8(session.take_output()).unwrap();
        if attempt == 0 {
            assert_eq!(output, "-ERR [AUTH] Authentication failed\r\n");
        } else {
            assert_eq!(
                output,
                "-ERR [AUTH] Authentication failed; too many errors, closing\r\n"
            );
        }
    }
    assert!(session.is_closed());
}

#[test]
fn no_such_message_is_not_a_protocol_error() {
    let mut session = fresh(ServerConfig {
        max_errors: 1,
        ..config()
    });
    reply(&mut session, "USER alice\r\n");
    send(&mut session, "PASS secret\r\n");
    session.login_succeeded(listing());
    session.take_output();
    assert_eq!(
        reply(&mut session, &"RETR 9\r\n".repeat(3)),
        "-ERR no such message\r\n".repeat(3)
    );
    assert!(!session.is_closed());
}

#[test]
fn decisions_without_a_pending_event_do_nothing() {
    let mut session = fresh(config());
    session.login_succeeded(listing());
    session.login_failed(LoginFailure::InUse);
    session.retrieve_ok();
    session.retrieve_failed();
    session.update_finished(true);
    session.tls_established();
    assert_eq!(session.take_output(), b"");
    assert!(!session.in_transaction());
    assert!(!session.is_tls());
    assert!(!session.is_closed());
    assert_eq!(reply(&mut session, "USER alice\r\n"), "+OK send PASS\r\n");
}

#[test]
fn timeout_closes_silently_without_update() {
    let mut session = logged_in();
    reply(&mut session, "DELE 1\r\n");
    session.timed_out();
    assert!(session.is_closed());
    assert_eq!(session.take_output(), b"");
    assert_eq!(send(&mut session, "QUIT\r\n"), (String::new(), None));
}

#[test]
fn shutdown_says_so_and_closes() {
    let mut session = logged_in();
    session.shutdown();
    assert_eq!(
        session.take_output(),
        b"-ERR [SYS/TEMP] Server shutting down\r\n"
    );
    assert!(session.is_closed());
    session.shutdown();
    assert_eq!(session.take_output(), b"");
}

#[test]
fn events_never_print_passwords() {
    let event = password("alice", "hunter2").unwrap();
    assert!(!format!("{event:?}").contains("hunter2"));
    let session = {
        let mut s = fresh(config());
        s.handle_input(b"USER alice\r\nPASS hunter2");
        s
    };
    assert!(!format!("{session:?}").contains("hunter2"));
}

/// Minimal base64 encoder for building SASL responses in tests.
fn encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
