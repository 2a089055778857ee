//! STARTTLS (RFC 3207) and AUTH (RFC 4954).

use mailroom_smtp_proto::{Event, ServerConfig, ServerSession, codes};

use crate::harness::*;

const NEED_HELO: &str = "503 5.5.1 Send HELO/EHLO first\r\n";

/// CVE-2011-0411 (STARTTLS command injection): commands pipelined after
/// STARTTLS in the same plaintext packet must never run, and TLS starts
/// from scratch (RFC 3207 §4.2).
#[test]
fn starttls_discards_pipelined_plaintext() {
    let mut session = ServerSession::new(full_config());
    session.take_output();
    session.handle_input(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b.example>\r\n");
    assert!(matches!(session.poll_event(), Some(Event::Helo { .. })));
    assert_eq!(session.poll_event(), Some(Event::StartTls));
    assert_eq!(session.poll_event(), None);
    // Plaintext that arrives before the handshake finished is dropped too.
    session.handle_input(b"RCPT TO:<u@local.example>\r\n");
    assert_eq!(session.poll_event(), None);
    let out = String::from_utf8(session.take_output()).unwrap();
    assert_eq!(
        out,
        format!(
            "{}220 2.0.0 Ready to start TLS\r\n",
            ehlo_reply(&["STARTTLS"])
        )
    );

    session.tls_established();
    assert!(session.is_tls());
    assert_eq!(session.helo(), None);
    assert_eq!(session.poll_event(), None);
    assert_eq!(
        session.take_output(),
        b"",
        "the MAIL sent before the handshake must not run"
    );

    // HELO/EHLO is forgotten: MAIL needs a new EHLO.
    session.handle_input(b"MAIL FROM:<a@b.example>\r\nEHLO c\r\n");
    assert!(matches!(session.poll_event(), Some(Event::Helo { .. })));
    assert_eq!(
        String::from_utf8(session.take_output()).unwrap(),
        format!("{NEED_HELO}{}", ehlo_reply(&["AUTH PLAIN LOGIN"]))
    );
}

#[test]
fn starttls_forgets_authentication_and_not_offered_cases() {
    // AUTH allowed in plaintext here, then STARTTLS: the identity is gone.
    let config = ServerConfig {
        auth_without_tls: true,
        ..full_config()
    };
    let mut session = ServerSession::new(config);
    let mut events = Vec::new();
    session.handle_input(b"EHLO c\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\nSTARTTLS\r\n");
    drive(&mut session, &mut events, &mut scripted);
    assert_eq!(session.authenticated(), None);
    assert!(session.is_tls());

    // Not offered: 502.
    assert_eq!(
        reply_after(config_without_tls(), "EHLO c\r\n", "STARTTLS\r\n"),
        "502 5.5.1 Command not implemented\r\n"
    );
    // Implicit TLS: already active, not advertised.
    let implicit = ServerConfig {
        tls_active: true,
        ..full_config()
    };
    assert_eq!(
        reply_after(implicit.clone(), "", "STARTTLS\r\n"),
        "503 5.5.1 TLS already active\r\n"
    );
    assert_eq!(
        reply_after(implicit, "", "EHLO c\r\n"),
        ehlo_reply(&["AUTH PLAIN LOGIN"])
    );
    // Arguments are a syntax error.
    assert_eq!(
        reply_after(full_config(), "", "STARTTLS now\r\n"),
        "501 5.5.4 Syntax: STARTTLS\r\n"
    );
}

fn config_without_tls() -> ServerConfig {
    config()
}

#[test]
fn failed_handshake_closes() {
    let mut session = ServerSession::new(full_config());
    session.handle_input(b"STARTTLS\r\n");
    assert_eq!(session.poll_event(), Some(Event::StartTls));
    session.respond(codes::tls_not_available());
    assert!(session.is_closed());
    assert!(!session.is_tls());
}

#[test]
fn auth_plain_and_login_exchanges() {
    let config = ServerConfig {
        auth_without_tls: true,
        ..full_config()
    };
    // Initial response.
    let t = run(
        config.clone(),
        &[b"EHLO c\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\nNOOP\r\n"],
    );
    assert!(
        t.text()
            .ends_with("235 2.7.0 Authentication successful\r\n250 2.0.0 Ok\r\n"),
        "{}",
        t.text()
    );
    // Empty initial response "=".
    let t = run(config.clone(), &[b"EHLO c\r\nAUTH PLAIN =\r\n"]);
    assert!(
        matches!(t.events.last(), Some(Event::Auth { initial_response: Some(r), .. }) if r.is_empty())
    );
    assert!(
        t.text()
            .ends_with("535 5.7.8 Authentication credentials invalid\r\n")
    );
    // LOGIN: two challenges, pipelined responses are fine.
    let t = run(
        config.clone(),
        &[
            b"EHLO c\r\nAUTH LOGIN\r\ndXNlcg==\r\n",
            b"cGFzcw==\r\nMAIL FROM:<a@b.example>\r\n",
        ],
    );
    assert!(
        t.text().ends_with("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n"),
        "{}",
        t.text()
    );
    assert_eq!(
        t.events[1..4],
        [
            Event::Auth {
                mechanism: "LOGIN".into(),
                initial_response: None
            },
            Event::AuthResponse {
                line: "dXNlcg==".into()
            },
            Event::AuthResponse {
                line: "cGFzcw==".into()
            },
        ]
    );
    // Wrong password.
    let t = run(
        config.clone(),
        &[b"EHLO c\r\nAUTH LOGIN\r\ndXNlcg==\r\nd3Jvbmc=\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n"],
    );
    assert!(
        t.text().ends_with("535 5.7.8 Authentication credentials invalid\r\n235 2.7.0 Authentication successful\r\n"),
        "{}",
        t.text()
    );
    // "*" cancels (RFC 4954 §4); bad base64 is 501 5.5.2; neither reaches the driver.
    let t = run(
        config.clone(),
        &[b"EHLO c\r\nAUTH LOGIN\r\n*\r\nAUTH LOGIN\r\nnot base64!\r\nNOOP\r\n"],
    );
    assert!(
        t.text().ends_with(
            "334 VXNlcm5hbWU6\r\n501 5.0.0 Authentication cancelled\r\n334 VXNlcm5hbWU6\r\n501 5.5.2 Cannot decode response\r\n250 2.0.0 Ok\r\n"
        ),
        "{}",
        t.text()
    );
    assert!(
        !t.events
            .iter()
            .any(|e| matches!(e, Event::AuthResponse { .. }))
    );
    // Unknown mechanism (RFC 4954 §4: 504 5.5.4).
    assert_eq!(
        reply_after(config, "EHLO c\r\n", "AUTH CRAM-MD5\r\n"),
        "504 5.5.4 Unrecognized authentication type\r\n"
    );
}

#[test]
fn accept_never_authenticates() {
    let config = ServerConfig {
        auth_without_tls: true,
        ..full_config()
    };
    let mut accept_all = |s: &mut ServerSession, _: &Event| s.accept();
    let t = run_with(
        config.clone(),
        &[b"EHLO c\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n"],
        &mut accept_all,
    );
    assert!(
        t.text()
            .ends_with("535 5.7.8 Authentication credentials invalid\r\n")
    );
    // respond() with a 235 ends the exchange but does not authenticate.
    let mut session = ServerSession::new(config);
    session.handle_input(b"EHLO c\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n");
    while let Some(e) = session.poll_event() {
        if matches!(e, Event::Auth { .. }) {
            session.respond(codes::auth_succeeded());
        }
    }
    assert_eq!(session.authenticated(), None);
}

#[test]
fn auth_not_offered_or_not_yet() {
    // No mechanisms configured.
    assert_eq!(
        reply_after(config(), "EHLO c\r\n", "AUTH PLAIN\r\n"),
        "503 5.5.1 AUTH not available\r\n"
    );
    // Only TLS is missing.
    assert_eq!(
        reply_after(full_config(), "EHLO c\r\n", "AUTH PLAIN\r\n"),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
}

#[test]
fn submission_requires_auth() {
    let config = ServerConfig {
        require_auth: true,
        auth_without_tls: true,
        ..full_config()
    };
    let t = run(
        config,
        &[b"EHLO c\r\nMAIL FROM:<u@local.example>\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\nMAIL FROM:<u@local.example>\r\n"],
    );
    assert!(
        t.text().ends_with("530 5.7.0 Authentication required\r\n235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n"),
        "{}",
        t.text()
    );
}

#[test]
fn authenticated_session_may_vrfy_and_expn() {
    let config = ServerConfig {
        auth_without_tls: true,
        ..full_config()
    };
    let t = run(
        config,
        &[b"EHLO c\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\nVRFY u\r\nEXPN nobody\r\n"],
    );
    assert!(
        t.text()
            .ends_with("250 2.1.5 <u@local.example>\r\n550 5.1.1 User unknown\r\n"),
        "{}",
        t.text()
    );
    assert!(matches!(
        &t.events[..],
        [.., Event::Vrfy { .. }, Event::Expn { .. }]
    ));
}
