//! Every command in every state, with the exact reply bytes.

use mailroom_core::Address;
use mailroom_smtp_proto::{
    BodyType, Envelope, Event, ForwardPath, MailParams, Notify, RcptParams, Recipient,
    ServerSession, codes,
};

use crate::harness::*;

const H: &str = "250 mx.local.example\r\n";
const OK: &str = "250 2.0.0 Ok\r\n";
const SENDER_OK: &str = "250 2.1.0 Ok\r\n";
const RCPT_OK: &str = "250 2.1.5 Ok\r\n";
const NEED_HELO: &str = "503 5.5.1 Send HELO/EHLO first\r\n";
const NESTED: &str = "503 5.5.1 Nested MAIL command\r\n";
const NEED_MAIL: &str = "503 5.5.1 Need MAIL command\r\n";
const NEED_RCPT: &str = "503 5.5.1 Need RCPT command\r\n";
const NO_VALID: &str = "554 5.5.1 No valid recipients\r\n";
const START_DATA: &str = "354 End data with <CR><LF>.<CR><LF>\r\n";
const QUEUED: &str = "250 2.0.0 Ok: queued as Q1\r\n";
const CLOSING: &str = "221 2.0.0 mx.local.example closing connection\r\n";
const HELP: &str = "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY EXPN STARTTLS AUTH\r\n\
                    214 2.0.0 See RFC 5321\r\n";
const CANNOT_VRFY: &str =
    "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n";
const VRFY_OK: &str = "250 2.1.5 <u@local.example>\r\n";
const NOT_IMPL: &str = "502 5.5.1 Command not implemented\r\n";
const TLS_READY: &str = "220 2.0.0 Ready to start TLS\r\n";
const TLS_ACTIVE: &str = "503 5.5.1 TLS already active\r\n";
const TLS_IN_TX: &str = "503 5.5.1 STARTTLS not allowed during a mail transaction\r\n";
const AUTH_TLS: &str = "538 5.7.11 Encryption required for requested authentication mechanism\r\n";
const AUTH_IN_TX: &str = "503 5.5.1 AUTH not allowed during a mail transaction\r\n";
const AUTH_AGAIN: &str = "503 5.5.1 Already authenticated\r\n";
const RETIRED: &str = "502 5.5.1 SEND was retired by RFC 5321\r\n";
const UNKNOWN: &str = "500 5.5.2 Command unrecognized\r\n";
/// Nothing: the line was message text.
const TEXT: &str = "";

/// The states, as the input chunks that lead to them (with [`full_config`]).
const STATES: [(&str, &[&str]); 10] = [
    ("fresh", &[]),
    ("helo", &["HELO c.example\r\n"]),
    ("ehlo", &["EHLO c.example\r\n"]),
    (
        "mail",
        &["EHLO c.example\r\nMAIL FROM:<s@remote.example>\r\n"],
    ),
    (
        "rcpt",
        &["EHLO c.example\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\n"],
    ),
    (
        "rejected rcpt",
        &["EHLO c.example\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<x@remote.example>\r\n"],
    ),
    (
        "in data",
        &[
            "EHLO c.example\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\nDATA\r\n",
        ],
    ),
    (
        "in bdat",
        &[
            "EHLO c.example\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\nBDAT 1000\r\n",
        ],
    ),
    ("after starttls", &["EHLO c.example\r\nSTARTTLS\r\n"]),
    (
        "authenticated",
        &[
            "EHLO c.example\r\nSTARTTLS\r\n",
            "EHLO c.example\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n",
        ],
    ),
];

fn reply_in_state(setup: &[&str], command: &str) -> String {
    let mut session = ServerSession::new(full_config());
    let mut events = Vec::new();
    for chunk in setup {
        session.handle_input(chunk.as_bytes());
        drive(&mut session, &mut events, &mut scripted);
    }
    session.take_output();
    session.handle_input(command.as_bytes());
    drive(&mut session, &mut events, &mut scripted);
    let out = session.take_output();
    assert_well_formed(&out);
    String::from_utf8(out).unwrap()
}

#[test]
fn every_command_in_every_state() {
    let e = ehlo_reply(&["STARTTLS"]);
    let e_tls = ehlo_reply(&["AUTH PLAIN LOGIN"]);
    let e_authed = ehlo_reply(&[]);
    let (e, e_tls, e_authed) = (e.as_str(), e_tls.as_str(), e_authed.as_str());
    #[rustfmt::skip]
    let table: Vec<(&str, [&str; 10])> = vec![
        //                                  fresh       helo       ehlo       mail        rcpt        rejected    data  bdat  tls         authed
        ("HELO c.example\r\n",            [H,          H,         H,         H,          H,          H,          TEXT, TEXT, H,          H]),
        ("EHLO c.example\r\n",            [e,          e,         e,         e,          e,          e,          TEXT, TEXT, e_tls,      e_authed]),
        ("MAIL FROM:<s@remote.example>\r\n", [NEED_HELO, SENDER_OK, SENDER_OK, NESTED,   NESTED,     NESTED,     TEXT, TEXT, NEED_HELO,  SENDER_OK]),
        ("RCPT TO:<u@local.example>\r\n", [NEED_MAIL,  NEED_MAIL, NEED_MAIL, RCPT_OK,    RCPT_OK,    RCPT_OK,    TEXT, TEXT, NEED_MAIL,  NEED_MAIL]),
        ("DATA\r\n",                      [NEED_MAIL,  NEED_MAIL, NEED_MAIL, NEED_RCPT,  START_DATA, NO_VALID,   TEXT, TEXT, NEED_MAIL,  NEED_MAIL]),
        ("BDAT 3 LAST\r\nabc",            [NEED_MAIL,  NEED_MAIL, NEED_MAIL, NEED_RCPT,  QUEUED,     NO_VALID,   TEXT, TEXT, NEED_MAIL,  NEED_MAIL]),
        ("RSET\r\n",                      [OK,         OK,        OK,        OK,         OK,         OK,         TEXT, TEXT, OK,         OK]),
        ("NOOP\r\n",                      [OK,         OK,        OK,        OK,         OK,         OK,         TEXT, TEXT, OK,         OK]),
        ("QUIT\r\n",                      [CLOSING,    CLOSING,   CLOSING,   CLOSING,    CLOSING,    CLOSING,    TEXT, TEXT, CLOSING,    CLOSING]),
        ("HELP\r\n",                      [HELP,       HELP,      HELP,      HELP,       HELP,       HELP,       TEXT, TEXT, HELP,       HELP]),
        ("VRFY u\r\n",                    [CANNOT_VRFY, CANNOT_VRFY, CANNOT_VRFY, CANNOT_VRFY, CANNOT_VRFY, CANNOT_VRFY, TEXT, TEXT, CANNOT_VRFY, VRFY_OK]),
        ("EXPN u\r\n",                    [NOT_IMPL,   NOT_IMPL,  NOT_IMPL,  NOT_IMPL,   NOT_IMPL,   NOT_IMPL,   TEXT, TEXT, NOT_IMPL,   VRFY_OK]),
        ("STARTTLS\r\n",                  [TLS_READY,  TLS_READY, TLS_READY, TLS_IN_TX,  TLS_IN_TX,  TLS_IN_TX,  TEXT, TEXT, TLS_ACTIVE, TLS_ACTIVE]),
        ("AUTH PLAIN AHVzZXIAcGFzcw==\r\n", [NEED_HELO, AUTH_TLS,  AUTH_TLS,  AUTH_IN_TX, AUTH_IN_TX, AUTH_IN_TX, TEXT, TEXT, NEED_HELO,  AUTH_AGAIN]),
        ("SEND FROM:<a@b.example>\r\n",   [RETIRED,    RETIRED,   RETIRED,   RETIRED,    RETIRED,    RETIRED,    TEXT, TEXT, RETIRED,    RETIRED]),
        ("XYZZY\r\n",                     [UNKNOWN,    UNKNOWN,   UNKNOWN,   UNKNOWN,    UNKNOWN,    UNKNOWN,    TEXT, TEXT, UNKNOWN,    UNKNOWN]),
    ];
    for (command, expected) in table {
        for ((state, setup), want) in STATES.iter().zip(expected) {
            assert_eq!(
                reply_in_state(setup, command),
                want,
                "{command:?} in state {state}"
            );
        }
    }
}

#[test]
fn greeting_and_states_are_distinct() {
    // Sanity check of the setups themselves.
    let t = run(full_config(), &[]);
    assert_eq!(t.text(), GREETING);
    assert_eq!(reply_in_state(&[], ""), "");
    assert_eq!(reply_in_state(STATES[7].1, &"x".repeat(999)), "");
    assert_eq!(
        reply_in_state(STATES[7].1, &format!("{}QUIT\r\n", "x".repeat(1000))),
        format!("250 2.0.0 1000 octets received\r\n{CLOSING}")
    );
}

fn address(s: &str) -> Address {
    Address::parse(s, true).unwrap()
}

fn mailbox(s: &str) -> Recipient {
    Recipient {
        path: ForwardPath::Mailbox(address(s)),
        params: RcptParams::default(),
    }
}

#[test]
fn data_transaction_events_and_envelope() {
    let t = run(
        config(),
        &[
            b"EHLO client.example\r\nMAIL FROM:<s@remote.example> SIZE=20 BODY=8BITMIME\r\n\
            RCPT TO:<u@local.example> NOTIFY=SUCCESS ORCPT=rfc822;u@local.example\r\n\
            RCPT TO:<x@remote.example>\r\nRCPT TO:<postmaster>\r\nDATA\r\n",
            b"QUIT\r\n..RSET\r\n.\r\nNOOP\r\n",
        ],
    );
    assert_eq!(
        t.text(),
        format!(
            "{GREETING}{}{SENDER_OK}{RCPT_OK}550 5.1.1 User unknown\r\n{RCPT_OK}{START_DATA}{QUEUED}{OK}",
            ehlo_reply(&[])
        )
    );
    let params = MailParams {
        size: Some(20),
        body: BodyType::EightBitMime,
        ..MailParams::default()
    };
    let u = Recipient {
        path: ForwardPath::Mailbox(address("u@local.example")),
        params: RcptParams {
            notify: Some(vec![Notify::Success]),
            orcpt: Some("rfc822;u@local.example".to_string()),
        },
    };
    let pm = Recipient {
        path: ForwardPath::Postmaster,
        params: RcptParams::default(),
    };
    assert_eq!(
        t.events,
        vec![
            Event::Helo {
                domain: "client.example".to_string(),
                extended: true
            },
            Event::MailFrom {
                reverse_path: Some(address("s@remote.example")),
                params: params.clone()
            },
            Event::RcptTo {
                recipient: u.clone()
            },
            Event::RcptTo {
                recipient: mailbox("x@remote.example")
            },
            Event::RcptTo {
                recipient: pm.clone()
            },
            Event::Message {
                envelope: Envelope {
                    helo: "client.example".to_string(),
                    esmtp: true,
                    reverse_path: Some(address("s@remote.example")),
                    mail_params: params,
                    recipients: vec![u, pm],
                },
                data: b"QUIT\r\n.RSET\r\n".to_vec(),
            },
        ]
    );
}

#[test]
fn helo_is_not_esmtp_and_null_sender() {
    let t = run(
        config(),
        &[b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<u@local.example>\r\nDATA\r\n.\r\n"],
    );
    assert_eq!(
        t.text(),
        format!("{GREETING}{H}{SENDER_OK}{RCPT_OK}{START_DATA}{QUEUED}")
    );
    let Some(Event::Message { envelope, data }) = t.events.last() else {
        panic!("{:?}", t.events)
    };
    assert!(!envelope.esmtp);
    assert_eq!(envelope.reverse_path, None);
    assert_eq!(data, b"");
}

#[test]
fn helo_and_ehlo_reset_the_transaction() {
    for hello in ["HELO c", "EHLO c"] {
        let input = format!(
            "EHLO c\r\nMAIL FROM:<s@remote.example>\r\n{hello}\r\nRCPT TO:<u@local.example>\r\nMAIL FROM:<s@remote.example>\r\n"
        );
        let t = run(config(), &[input.as_bytes()]);
        assert!(
            t.text().ends_with(&format!("{NEED_MAIL}{SENDER_OK}")),
            "{}",
            t.text()
        );
    }
}

#[test]
fn rset_keeps_helo_and_ends_transaction() {
    let t = run(config(), &[b"EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRSET\r\nRCPT TO:<u@local.example>\r\nMAIL FROM:<s@remote.example>\r\n"]);
    assert_eq!(
        t.text(),
        format!(
            "{GREETING}{}{SENDER_OK}{OK}{NEED_MAIL}{SENDER_OK}",
            ehlo_reply(&[])
        )
    );
}

#[test]
fn rejected_sender_starts_no_transaction() {
    let mut decide = |s: &mut ServerSession, e: &Event| match e {
        Event::MailFrom { .. } => s.respond(codes::sender_rejected()),
        _ => scripted(s, e),
    };
    let t = run_with(
        config(),
        &[b"EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\n"],
        &mut decide,
    );
    assert!(
        t.text()
            .ends_with(&format!("550 5.7.1 Sender rejected\r\n{NEED_MAIL}")),
        "{}",
        t.text()
    );
}

#[test]
fn bdat_chunks() {
    let t = run(
        config(),
        &[b"EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\nBDAT 7\r\nline 1\rBDAT 9\r\n\nline 2\r\nBDAT 0 LAST\r\nNOOP\r\n"],
    );
    assert_eq!(
        t.text(),
        format!(
            "{GREETING}{}{SENDER_OK}{RCPT_OK}250 2.0.0 7 octets received\r\n250 2.0.0 9 octets received\r\n{QUEUED}{OK}",
            ehlo_reply(&[])
        )
    );
    let Some(Event::Message { data, .. }) = t.events.last() else {
        panic!("{:?}", t.events)
    };
    assert_eq!(data, b"line 1\r\nline 2\r\n");
}

#[test]
fn bdat_zero_last_is_an_empty_message() {
    let t = run(config(), &[b"EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\nBDAT 0 LAST\r\n"]);
    assert!(t.text().ends_with(QUEUED));
    assert!(matches!(t.events.last(), Some(Event::Message { data, .. }) if data.is_empty()));
}

#[test]
fn bdat_and_data_do_not_mix() {
    let base =
        "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\nBDAT 2\r\nab";
    let t = run(
        config(),
        &[format!("{base}DATA\r\nRCPT TO:<v@local.example>\r\nBDAT 1 LAST\r\nc").as_bytes()],
    );
    assert!(
        t.text().ends_with(&format!(
            "250 2.0.0 2 octets received\r\n503 5.5.1 DATA not allowed after BDAT\r\n503 5.5.1 RCPT not allowed after BDAT\r\n{QUEUED}"
        )),
        "{}",
        t.text()
    );
    assert!(matches!(t.events.last(), Some(Event::Message { data, .. }) if data == b"abc"));
}

#[test]
fn bdat_text_rules() {
    for (body, want) in [
        (
            "a\nb",
            "554 5.6.0 Message rejected: bare CR or LF, lines must end with CRLF (RFC 5321 section 2.3.8)\r\n",
        ),
        (
            "a\0b",
            "554 5.6.0 Message rejected: NUL octets are not allowed\r\n",
        ),
    ] {
        let input = format!(
            "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\nBDAT {} LAST\r\n{body}NOOP\r\n",
            body.len()
        );
        let t = run(config(), &[input.as_bytes()]);
        assert!(t.text().ends_with(&format!("{want}{OK}")), "{}", t.text());
        assert!(!t.events.iter().any(|e| matches!(e, Event::Message { .. })));
    }
    // Out of sequence: the octets are still consumed.
    let t = run(
        config(),
        &[b"EHLO c\r\nBDAT 6\r\nNOOP\r\nBDAT 4 LAST\r\nQUITNOOP\r\n"],
    );
    assert!(
        t.text().ends_with(&format!("{NEED_MAIL}{NEED_MAIL}{OK}")),
        "{}",
        t.text()
    );
}

#[test]
fn smtputf8_recipients() {
    let t = run(
        config(),
        &[
            "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<j\u{fc}rgen@local.example>\r\n"
                .as_bytes(),
        ],
    );
    assert!(
        t.text()
            .ends_with("553 5.6.7 SMTPUTF8 required for this address\r\n"),
        "{}",
        t.text()
    );
    let t = run(config(), &["EHLO c\r\nMAIL FROM:<s@remote.example> SMTPUTF8\r\nRCPT TO:<j\u{fc}rgen@local.example>\r\n".as_bytes()]);
    assert!(t.text().ends_with(RCPT_OK), "{}", t.text());
}

#[test]
fn pipelined_commands_wait_for_each_decision() {
    let mut session = ServerSession::new(config());
    session.take_output();
    session.handle_input(
        b"EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\nNOOP\r\n",
    );
    assert!(matches!(session.poll_event(), Some(Event::Helo { .. })));
    assert!(matches!(session.poll_event(), Some(Event::MailFrom { .. })));
    // Pending: nothing more until the driver answers, even with more input.
    assert_eq!(session.poll_event(), None);
    session.handle_input(b"RSET\r\n");
    assert_eq!(session.poll_event(), None);
    // Answers that do not match the pending event are ignored.
    session.auth_succeeded("intruder");
    session.auth_challenge("x");
    session.tls_established();
    assert_eq!(session.authenticated(), None);
    assert!(!session.is_tls());
    session.accept();
    assert!(matches!(session.poll_event(), Some(Event::RcptTo { .. })));
    session.respond(codes::user_unknown());
    assert_eq!(session.poll_event(), None);
    assert_eq!(
        String::from_utf8(session.take_output()).unwrap(),
        format!(
            "{}{SENDER_OK}550 5.1.1 User unknown\r\n{OK}{OK}",
            ehlo_reply(&[])
        )
    );
    // No decision pending: answers are ignored.
    session.accept();
    session.respond(codes::ok());
    assert_eq!(session.take_output(), b"");
}

#[test]
fn default_accept_replies() {
    let mut accept_all = |s: &mut ServerSession, _: &Event| s.accept();
    let t = run_with(
        ServerConfig { vrfy: true, expn: true, ..config() },
        &[b"EHLO c\r\nVRFY x\r\nEXPN y\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<a@remote.example>\r\nDATA\r\nhi\r\n.\r\n"],
        &mut accept_all,
    );
    assert_eq!(
        t.text(),
        format!(
            "{GREETING}{}{CANNOT_VRFY}{CANNOT_VRFY}{SENDER_OK}{RCPT_OK}{START_DATA}{OK}",
            ehlo_reply(&[])
        )
    );
    assert!(matches!(&t.events[1], Event::Vrfy { argument } if argument == "x"));
    assert!(matches!(&t.events[2], Event::Expn { argument } if argument == "y"));
}

#[test]
fn vrfy_needs_an_argument() {
    assert_eq!(
        reply_after(config(), "", "VRFY\r\n"),
        "501 5.5.4 Syntax: VRFY <user name>\r\n"
    );
}

#[test]
fn quit_closes_and_ignores_the_rest() {
    let t = run(config(), &[b"QUIT\r\nNOOP\r\n", b"NOOP\r\n"]);
    assert_eq!(t.text(), format!("{GREETING}{CLOSING}"));
    assert_eq!(t.events, vec![Event::Quit]);
    assert!(t.closed);
}

#[test]
fn shutdown_and_timeout() {
    let mut session = ServerSession::new(config());
    session.take_output();
    session.shutdown();
    assert!(session.is_closed());
    assert_eq!(
        session.take_output(),
        b"421 4.3.2 mx.local.example Service shutting down, closing connection\r\n"
    );
    session.timed_out();
    assert_eq!(session.take_output(), b"");

    let mut session = ServerSession::new(config());
    session.take_output();
    session.timed_out();
    assert!(session.is_closed());
    assert_eq!(
        session.take_output(),
        b"421 4.4.2 mx.local.example Timeout exceeded, closing connection\r\n"
    );
}

#[test]
fn timeouts_and_in_data() {
    use mailroom_smtp_proto::Timeout;
    let mut session = ServerSession::new(config());
    let mut events = Vec::new();
    assert_eq!(session.next_timeout(), Timeout::Command);
    session.handle_input(
        b"EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\nDATA\r\nabc",
    );
    drive(&mut session, &mut events, &mut scripted);
    assert!(session.in_data());
    assert_eq!(session.next_timeout(), Timeout::DataBlock);
    session.handle_input(b"\r\n.\r\nBDAT 10\r\n");
    drive(&mut session, &mut events, &mut scripted);
    assert!(session.in_data(), "BDAT octets pending");
    session.handle_input(b"0123456789");
    drive(&mut session, &mut events, &mut scripted);
    assert!(!session.in_data());
    assert_eq!(session.next_timeout(), Timeout::Command);
    assert_eq!(session.helo(), Some("c"));
}

use mailroom_smtp_proto::ServerConfig;
