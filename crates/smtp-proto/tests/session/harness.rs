//! Runs conversations against a [`ServerSession`] with a scripted driver.

use mailroom_smtp_proto::{Event, ForwardPath, ServerConfig, ServerSession, codes};

/// Our host name in every test.
pub(crate) const HOST: &str = "mx.local.example";
/// The greeting every session starts with.
pub(crate) const GREETING: &str = "220 mx.local.example ESMTP mailroom ready\r\n";
/// base64 of "\0user\0pass": the one good AUTH PLAIN credential.
pub(crate) const GOOD_PLAIN: &str = "AHVzZXIAcGFzcw==";

/// Everything a conversation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transcript {
    /// All output bytes, greeting included.
    pub(crate) output: Vec<u8>,
    /// All events, in order.
    pub(crate) events: Vec<Event>,
    /// Whether the session ended closed.
    pub(crate) closed: bool,
}

impl Transcript {
    /// The output as text (lossy).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// The default test configuration: our host name, everything else default.
pub(crate) fn config() -> ServerConfig {
    ServerConfig {
        hostname: HOST.to_string(),
        ..ServerConfig::default()
    }
}

/// A configuration offering STARTTLS and AUTH PLAIN LOGIN (AUTH only over TLS).
pub(crate) fn full_config() -> ServerConfig {
    ServerConfig {
        starttls: true,
        auth_mechanisms: vec!["PLAIN".to_string(), "LOGIN".to_string()],
        ..config()
    }
}

/// The scripted driver: accepts every sender; accepts recipients at
/// `local.example` and Postmaster, refuses others with 550 5.1.1; accepts
/// every message as queue id Q1; answers VRFY/EXPN for local users; AUTH
/// PLAIN/LOGIN with user/pass; completes every STARTTLS handshake.
pub(crate) fn scripted(session: &mut ServerSession, event: &Event) {
    match event {
        Event::MailFrom { .. } => session.accept(),
        Event::RcptTo { recipient } => match &recipient.path {
            ForwardPath::Postmaster => session.accept(),
            ForwardPath::Mailbox(a) if a.domain().as_str() == "local.example" => session.accept(),
            ForwardPath::Mailbox(_) => session.respond(codes::user_unknown()),
        },
        Event::Message { .. } => session.respond(codes::message_accepted("Q1")),
        Event::Vrfy { argument } | Event::Expn { argument } => {
            if argument == "u" {
                session.respond(codes::vrfy_ok("<u@local.example>"));
            } else {
                session.respond(codes::user_unknown());
            }
        }
        Event::Auth {
            mechanism,
            initial_response,
        } => match (mechanism.as_str(), initial_response.as_deref()) {
            ("PLAIN", Some(GOOD_PLAIN)) => session.auth_succeeded("user"),
            ("PLAIN", None) => session.auth_challenge(""),
            ("LOGIN", None) => session.auth_challenge("VXNlcm5hbWU6"),
            _ => session.respond(codes::auth_failed()),
        },
        Event::AuthResponse { line } => match line.as_str() {
            GOOD_PLAIN => session.auth_succeeded("user"),
            // LOGIN: "user" then "pass".
            "dXNlcg==" => session.auth_challenge("UGFzc3dvcmQ6"),
            "cGFzcw==" => session.auth_succeeded("user"),
            _ => session.respond(codes::auth_failed()),
        },
        Event::StartTls => session.tls_established(),
        Event::Helo { .. } | Event::Quit => {}
    }
}

/// Runs `chunks` through a new session with the scripted driver.
pub(crate) fn run(config: ServerConfig, chunks: &[&[u8]]) -> Transcript {
    run_with(config, chunks, &mut scripted)
}

/// Runs `chunks` through a new session, answering events with `decide`.
pub(crate) fn run_with(
    config: ServerConfig,
    chunks: &[&[u8]],
    decide: &mut dyn FnMut(&mut ServerSession, &Event),
) -> Transcript {
    let mut session = ServerSession::new(config);
    let mut output = session.take_output();
    let mut events = Vec::new();
    for chunk in chunks {
        session.handle_input(chunk);
        drive(&mut session, &mut events, decide);
        output.extend(session.take_output());
    }
    assert_well_formed(&output);
    Transcript {
        output,
        events,
        closed: session.is_closed(),
    }
}

/// Polls until the session has nothing more, answering events.
pub(crate) fn drive(
    session: &mut ServerSession,
    events: &mut Vec<Event>,
    decide: &mut dyn FnMut(&mut ServerSession, &Event),
) {
    while let Some(event) = session.poll_event() {
        decide(session, &event);
        events.push(event);
    }
}

/// The reply text `command` gets after `setup`, both fed whole.
pub(crate) fn reply_after(config: ServerConfig, setup: &str, command: &str) -> String {
    let mut session = ServerSession::new(config);
    let mut events = Vec::new();
    session.handle_input(setup.as_bytes());
    drive(&mut session, &mut events, &mut scripted);
    session.take_output();
    session.handle_input(command.as_bytes());
    drive(&mut session, &mut events, &mut scripted);
    let out = session.take_output();
    assert_well_formed(&out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Asserts that `output` is a sequence of well-formed reply lines (RFC 5321
/// §4.2): `ddd-text` continuation lines with the same code, then `ddd
/// text` or `ddd`, each ending in CR LF, with no other CR or LF.
pub(crate) fn assert_well_formed(output: &[u8]) {
    let text =
        std::str::from_utf8(output).unwrap_or_else(|_| panic!("output is not UTF-8: {output:?}"));
    assert!(
        text.is_empty() || text.ends_with("\r\n"),
        "output does not end in CRLF: {text:?}"
    );
    let mut continuing: Option<&str> = None;
    for line in text.split_terminator("\r\n") {
        assert!(
            !line.contains(['\r', '\n']),
            "bare CR/LF in output line {line:?}"
        );
        let code = line
            .get(..3)
            .unwrap_or_else(|| panic!("short reply line {line:?}"));
        assert!(
            code.bytes().all(|b| b.is_ascii_digit()),
            "bad code in {line:?}"
        );
        assert!(
            matches!(code.as_bytes()[0], b'2'..=b'5'),
            "bad class in {line:?}"
        );
        if let Some(c) = continuing {
            assert_eq!(c, code, "continuation with another code: {line:?}");
        }
        continuing = match line.as_bytes().get(3) {
            None | Some(b' ') => None,
            Some(b'-') => Some(code),
            Some(_) => panic!("bad separator in {line:?}"),
        };
    }
    assert!(
        continuing.is_none(),
        "multi-line reply not finished: {text:?}"
    );
}

/// The EHLO reply of [`config`] (no STARTTLS, no AUTH).
pub(crate) fn ehlo_reply(extra: &[&str]) -> String {
    let mut lines = vec![
        HOST.to_string(),
        "PIPELINING".to_string(),
        "SIZE 26214400".to_string(),
        "8BITMIME".to_string(),
        "ENHANCEDSTATUSCODES".to_string(),
        "SMTPUTF8".to_string(),
        "CHUNKING".to_string(),
        "DSN".to_string(),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    lines.push("HELP".to_string());
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
        .collect()
}
