//! Scripted fake-server conversations: every script lists the exact bytes
//! the client must write, the server's replies, the driver's actions and the
//! events expected. Each script runs with the server's bytes delivered
//! whole, one byte at a time, at every split point and in random splits
//! (`mailroom_testkit::splittings`), and must give the same events.

#![allow(clippy::unwrap_used)]

use mailroom_smtp_client::{
    ClientConfig, ClientError, ClientEvent, ClientSession, ClientTimeout, ConfigError, Credentials,
    DataEncoder, Failure, LocalReason, Notify, Outcome, RecipientSpec, Reply, ReplyError,
    ReplyParser, Ret, TlsPolicy, Transaction, TransactionResult, UsageError,
};

/// One line of a script.
enum Step {
    /// The server sends these bytes.
    S(&'static str),
    /// The client must have written exactly this since the previous `C`.
    C(&'static str),
    /// The events since the previous `E`, in order.
    E(Vec<ClientEvent>),
    /// `next_timeout()` must name this timeout now.
    T(ClientTimeout),
    /// The driver submits a transaction.
    Submit(Transaction),
    /// The driver calls `quit`.
    Quit,
    /// The driver finished the TLS handshake.
    TlsDone,
    /// The driver streams this message through a `DataEncoder` and calls
    /// `data_sent`.
    Data(&'static [u8]),
    /// The connection drops.
    Lost,
    /// The current timeout expires.
    Expire,
    /// A check on the session's getters.
    Check(fn(&ClientSession)),
}

use Step::{C, Check, Data, E, Expire, Lost, Quit, S, Submit, T, TlsDone};

/// Runs `script` once with the server's bytes cut per `variant`, returning
/// every event.
fn run_once(config: &ClientConfig, script: &[Step], variant: usize) -> Vec<ClientEvent> {
    let mut session = ClientSession::new(config.clone()).unwrap();
    let mut wire: Vec<u8> = Vec::new();
    let mut unchecked: Vec<ClientEvent> = Vec::new();
    let mut all = Vec::new();
    let drain =
        |session: &mut ClientSession, wire: &mut Vec<u8>, unchecked: &mut Vec<ClientEvent>| {
            while let Some(event) = session.poll_event() {
                unchecked.push(event);
            }
            wire.extend(session.take_output());
        };
    drain(&mut session, &mut wire, &mut unchecked);
    for (n, step) in script.iter().enumerate() {
        let at = format!("step {n}, variant {variant}");
        match step {
            S(bytes) => {
                let cuts = mailroom_testkit::splittings(bytes.as_bytes(), 8);
                for piece in &cuts[variant % cuts.len()] {
                    session.handle_input(piece);
                    drain(&mut session, &mut wire, &mut unchecked);
                }
            }
            C(want) => {
                assert_eq!(
                    String::from_utf8_lossy(&wire),
                    *want,
                    "client bytes at {at}"
                );
                wire.clear();
            }
            E(want) => {
                assert_eq!(&unchecked, want, "events at {at}");
                all.append(&mut unchecked);
            }
            T(want) => assert_eq!(session.next_timeout(), *want, "timeout at {at}"),
            Submit(tx) => session.submit(tx.clone()).unwrap(),
            Quit => session.quit().unwrap(),
            TlsDone => session.tls_established().unwrap(),
            Data(message) => {
                // Stream in small pieces, as a driver reading a spool file.
                let mut encoder = DataEncoder::new();
                for piece in message.chunks(3) {
                    encoder.encode(piece, &mut wire);
                }
                encoder.finish(&mut wire);
                session.data_sent().unwrap();
            }
            Lost => session.connection_lost(),
            Expire => session.timed_out(),
            Check(check) => check(&session),
        }
        drain(&mut session, &mut wire, &mut unchecked);
    }
    assert_eq!(
        String::from_utf8_lossy(&wire),
        "",
        "unchecked client bytes at the end, variant {variant}"
    );
    assert!(
        unchecked.is_empty(),
        "unchecked events at the end, variant {variant}: {unchecked:?}"
    );
    all
}

/// Runs `script` under every way of cutting the server's bytes; all runs
/// must produce the same events.
fn check(config: ClientConfig, script: &[Step]) {
    let variants = script
        .iter()
        .filter_map(|step| match step {
            S(bytes) => Some(mailroom_testkit::splittings(bytes.as_bytes(), 8).len()),
            _ => None,
        })
        .max()
        .unwrap_or(1);
    let first = run_once(&config, script, 0);
    for variant in 1..variants {
        assert_eq!(
            run_once(&config, script, variant),
            first,
            "variant {variant}"
        );
    }
}

fn config() -> ClientConfig {
    ClientConfig::new("client.example")
}

fn reply(wire: &str) -> Reply {
    let mut parser = ReplyParser::new();
    parser.push(wire.as_bytes());
    parser.next_reply().unwrap().unwrap()
}

fn tx(from: &str, to: &[&str]) -> Transaction {
    Transaction {
        reverse_path: Some(from.to_string()),
        recipients: to.iter().map(|a| RecipientSpec::new(*a)).collect(),
        size: 100,
        needs_8bit: false,
        needs_smtputf8: false,
        envid: None,
        ret: None,
    }
}

fn done(outcomes: Vec<(&str, Outcome)>) -> ClientEvent {
    ClientEvent::TransactionDone(TransactionResult {
        per_recipient: outcomes
            .into_iter()
            .map(|(a, o)| (a.to_string(), o))
            .collect(),
    })
}

fn delivered(wire: &str) -> Outcome {
    Outcome::Delivered(reply(wire))
}

fn temp(wire: &str) -> Outcome {
    Outcome::TemporaryFailure(Failure::Remote(reply(wire)))
}

fn perm(wire: &str) -> Outcome {
    Outcome::PermanentFailure(Failure::Remote(reply(wire)))
}

fn perm_local(reason: LocalReason) -> Outcome {
    Outcome::PermanentFailure(Failure::Local(reason))
}

fn temp_local(reason: LocalReason) -> Outcome {
    Outcome::TemporaryFailure(Failure::Local(reason))
}

const GREETING: &str = "220 mx.example.org ESMTP\r\n";
const EHLO: &str = "EHLO client.example\r\n";
const MESSAGE: &[u8] = b"Subject: hi\r\n\r\n.leading dot\r\nbye\r\n";
const MESSAGE_WIRE: &str = "Subject: hi\r\n\r\n..leading dot\r\nbye\r\n.\r\n";

#[test]
fn one_command_at_a_time_without_pipelining() {
    check(
        config(),
        &[
            T(ClientTimeout::Initial),
            S(GREETING),
            C(EHLO),
            T(ClientTimeout::Command),
            S("250-mx.example.org hello\r\n250 8BITMIME\r\n"),
            C(""),
            E(vec![ClientEvent::Ready]),
            T(ClientTimeout::Idle),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org"])),
            C("MAIL FROM:<a@x.org>\r\n"),
            T(ClientTimeout::Mail),
            S("250 2.1.0 ok\r\n"),
            C("RCPT TO:<b@y.org>\r\n"),
            T(ClientTimeout::Rcpt),
            S("250 2.1.5 ok\r\n"),
            C("RCPT TO:<c@y.org>\r\n"),
            S("250 2.1.5 ok\r\n"),
            C("DATA\r\n"),
            T(ClientTimeout::DataInit),
            S("354 go ahead\r\n"),
            E(vec![ClientEvent::SendData]),
            T(ClientTimeout::DataBlock),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            T(ClientTimeout::DataTermination),
            S("250 2.0.0 queued as 1\r\n"),
            E(vec![
                done(vec![
                    ("b@y.org", delivered("250 2.0.0 queued as 1\r\n")),
                    ("c@y.org", delivered("250 2.0.0 queued as 1\r\n")),
                ]),
                ClientEvent::Ready,
            ]),
            Quit,
            C("QUIT\r\n"),
            T(ClientTimeout::Command),
            S("221 2.0.0 bye\r\n"),
            E(vec![ClientEvent::Closed]),
            T(ClientTimeout::Idle),
            Check(|s| assert!(s.is_finished())),
        ],
    );
}

#[test]
fn pipelining_sends_the_envelope_as_one_group() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 10000\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org"])),
            C("MAIL FROM:<a@x.org> SIZE=100\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"),
            T(ClientTimeout::Mail),
            S("250 2.1.0 ok\r\n250 2.1.5 ok\r\n"),
            T(ClientTimeout::Rcpt),
            S("250 2.1.5 ok\r\n"),
            T(ClientTimeout::DataInit),
            S("354 go ahead\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("250 2.0.0 ok\r\n"),
            E(vec![
                done(vec![
                    ("b@y.org", delivered("250 2.0.0 ok\r\n")),
                    ("c@y.org", delivered("250 2.0.0 ok\r\n")),
                ]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn pipelined_replies_may_arrive_in_one_read() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250 PIPELINING\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(b""),
            C(".\r\n"),
            S("250 ok\r\n"),
            E(vec![
                done(vec![("b@y.org", delivered("250 ok\r\n"))]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("502 5.5.1 command not implemented\r\n"),
            C("HELO client.example\r\n"),
            E(vec![]),
            S("250 mx.example.org\r\n"),
            E(vec![ClientEvent::Ready]),
            Check(|s| assert_eq!(s.extensions(), &Default::default())),
            // No extensions: no SIZE, one command at a time.
            Submit(tx("a@x.org", &["b@y.org"])),
            C("MAIL FROM:<a@x.org>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@y.org>\r\n"),
            S("250 ok\r\n"),
            C("DATA\r\n"),
            S("354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("250 ok\r\n"),
            E(vec![
                done(vec![("b@y.org", delivered("250 ok\r\n"))]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn helo_refused_too_fails_the_connection() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("500 what\r\n"),
            C("HELO client.example\r\n"),
            S("550 go away\r\n"),
            C("QUIT\r\n"),
            E(vec![ClientEvent::Failed(ClientError::HeloRejected(reply(
                "550 go away\r\n",
            )))]),
        ],
    );
}

#[test]
fn ehlo_transient_failure_is_not_a_reason_for_helo() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("451 4.3.0 try later\r\n"),
            C("QUIT\r\n"),
            E(vec![ClientEvent::Failed(ClientError::EhloRejected(reply(
                "451 4.3.0 try later\r\n",
            )))]),
        ],
    );
}

const PIPELINING_EHLO: &str = "250-mx.example.org\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n";

#[test]
fn partial_rcpt_failures_pipelined() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org", "d@y.org"])),
            C(
                "MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nRCPT TO:<d@y.org>\r\nDATA\r\n",
            ),
            S(
                "250 2.1.0 ok\r\n550 5.1.1 no such user\r\n250 2.1.5 ok\r\n451 4.7.1 greylisted\r\n354 go\r\n",
            ),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("250 2.0.0 ok\r\n"),
            E(vec![
                done(vec![
                    ("b@y.org", perm("550 5.1.1 no such user\r\n")),
                    ("c@y.org", delivered("250 2.0.0 ok\r\n")),
                    ("d@y.org", temp("451 4.7.1 greylisted\r\n")),
                ]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn partial_rcpt_failures_one_at_a_time() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250 mx\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org"])),
            C("MAIL FROM:<a@x.org>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@y.org>\r\n"),
            S("550 5.1.1 no such user\r\n"),
            C("RCPT TO:<c@y.org>\r\n"),
            S("250 ok\r\n"),
            C("DATA\r\n"),
            S("354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("250 ok\r\n"),
            E(vec![
                done(vec![
                    ("b@y.org", perm("550 5.1.1 no such user\r\n")),
                    ("c@y.org", delivered("250 ok\r\n")),
                ]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn all_rcpts_failed_pipelined_means_rset_and_no_data() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n550 5.1.1 no\r\n450 4.2.1 later\r\n554 5.5.1 no valid recipients\r\n"),
            C("RSET\r\n"),
            E(vec![done(vec![
                ("b@y.org", perm("550 5.1.1 no\r\n")),
                ("c@y.org", temp("450 4.2.1 later\r\n")),
            ])]),
            T(ClientTimeout::Command),
            // Not ready until the RSET is answered.
            Check(|s| assert!(!s.is_ready())),
            S("250 2.0.0 ok\r\n"),
            E(vec![ClientEvent::Ready]),
            // The connection is reused for the next message.
            Submit(tx("a@x.org", &["d@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<d@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("250 ok\r\n"),
            E(vec![
                done(vec![("d@y.org", delivered("250 ok\r\n"))]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn all_rcpts_failed_one_at_a_time_means_rset_without_data() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250 mx\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org"])),
            C("MAIL FROM:<a@x.org>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@y.org>\r\n"),
            S("550 no\r\n"),
            C("RCPT TO:<c@y.org>\r\n"),
            S("550 no\r\n"),
            C("RSET\r\n"),
            E(vec![done(vec![
                ("b@y.org", perm("550 no\r\n")),
                ("c@y.org", perm("550 no\r\n")),
            ])]),
            S("250 ok\r\n"),
            E(vec![ClientEvent::Ready]),
        ],
    );
}

/// RFC 2920 §3.1: when DATA is accepted although no recipient was, the
/// client sends a lone dot, never the message.
#[test]
fn data_accepted_without_recipients_gets_a_lone_dot() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n550 5.1.1 no\r\n354 go\r\n"),
            C(".\r\n"),
            E(vec![]),
            T(ClientTimeout::DataTermination),
            S("554 5.5.1 no valid recipients\r\n"),
            E(vec![
                done(vec![("b@y.org", perm("550 5.1.1 no\r\n"))]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn mail_rejected_pipelined_fails_everyone_and_needs_no_rset() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"),
            S("550 5.7.1 sender denied\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"),
            E(vec![]),
            S("503 5.5.1 need MAIL\r\n"),
            E(vec![
                done(vec![
                    ("b@y.org", perm("550 5.7.1 sender denied\r\n")),
                    ("c@y.org", perm("550 5.7.1 sender denied\r\n")),
                ]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn mail_rejected_one_at_a_time_sends_no_rcpt() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250 mx\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org"])),
            C("MAIL FROM:<a@x.org>\r\n"),
            S("451 4.3.0 try later\r\n"),
            E(vec![
                done(vec![("b@y.org", temp("451 4.3.0 try later\r\n"))]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn data_refused_fails_accepted_recipients_and_resets() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n451 4.3.0 not now\r\n"),
            C("RSET\r\n"),
            E(vec![done(vec![
                ("b@y.org", temp("451 4.3.0 not now\r\n")),
                ("c@y.org", perm("550 5.1.1 no\r\n")),
            ])]),
            S("250 ok\r\n"),
            E(vec![ClientEvent::Ready]),
        ],
    );
}

#[test]
fn final_reply_applies_only_to_accepted_recipients() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("554 5.7.1 spam\r\n"),
            E(vec![
                done(vec![
                    ("b@y.org", perm("550 5.1.1 no\r\n")),
                    ("c@y.org", perm("554 5.7.1 spam\r\n")),
                ]),
                ClientEvent::Ready,
            ]),
            // The end of data closed the transaction: no RSET.
            Submit(tx("a@x.org", &["d@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<d@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("452 4.3.1 disk full\r\n"),
            E(vec![
                done(vec![("d@y.org", temp("452 4.3.1 disk full\r\n"))]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

/// RFC 5321 §4.5.3.1.10: 552 at RCPT is "too many recipients": temporary.
#[test]
fn rcpt_552_is_temporary() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n552 too many recipients\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("250 ok\r\n"),
            E(vec![
                done(vec![
                    ("b@y.org", delivered("250 ok\r\n")),
                    (
                        "c@y.org",
                        Outcome::TemporaryFailure(Failure::Remote(reply(
                            "552 too many recipients\r\n",
                        ))),
                    ),
                ]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn eight_bit_body_without_8bitmime_fails_before_mail() {
    let mut eight_bit = tx("a@x.org", &["b@y.org", "c@y.org"]);
    eight_bit.needs_8bit = true;
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(eight_bit),
            C(""),
            E(vec![
                done(vec![
                    ("b@y.org", perm_local(LocalReason::Needs8BitMime)),
                    ("c@y.org", perm_local(LocalReason::Needs8BitMime)),
                ]),
                ClientEvent::Ready,
            ]),
            Check(|s| assert!(s.is_ready())),
        ],
    );
    assert_eq!(
        LocalReason::Needs8BitMime.to_string(),
        "5.6.3 remote server does not support 8BITMIME"
    );
}

#[test]
fn eight_bit_body_with_8bitmime_declares_it() {
    let mut eight_bit = tx("a@x.org", &["b@y.org"]);
    eight_bit.needs_8bit = true;
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(eight_bit),
            C("MAIL FROM:<a@x.org> BODY=8BITMIME\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data("caf\u{e9}\r\n".as_bytes()),
            C("caf\u{e9}\r\n.\r\n"),
            S("250 ok\r\n"),
            E(vec![
                done(vec![("b@y.org", delivered("250 ok\r\n"))]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn size_over_the_limit_fails_before_mail() {
    let mut big = tx("a@x.org", &["b@y.org"]);
    big.size = 1001;
    let mut exact = tx("a@x.org", &["b@y.org"]);
    exact.size = 1000;
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(big),
            C(""),
            E(vec![
                done(vec![(
                    "b@y.org",
                    perm_local(LocalReason::MessageTooBig {
                        size: 1001,
                        limit: 1000,
                    }),
                )]),
                ClientEvent::Ready,
            ]),
            Submit(exact),
            C("MAIL FROM:<a@x.org> SIZE=1000\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n451 later\r\n"),
            C("RSET\r\n"),
            E(vec![done(vec![("b@y.org", temp("451 later\r\n"))])]),
            S("250 ok\r\n"),
            E(vec![ClientEvent::Ready]),
        ],
    );
}

#[test]
fn smtputf8_needed_but_not_offered() {
    let mut utf8_header = tx("a@x.org", &["b@y.org"]);
    utf8_header.needs_smtputf8 = true;
    let utf8_address = tx("a@x.org", &["j\u{fc}rgen@example.de", "c@y.org"]);
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(utf8_header),
            C(""),
            E(vec![
                done(vec![(
                    "b@y.org",
                    perm_local(LocalReason::NeedsSmtpUtf8Message),
                )]),
                ClientEvent::Ready,
            ]),
            Submit(utf8_address),
            C(""),
            E(vec![
                done(vec![
                    (
                        "j\u{fc}rgen@example.de",
                        perm_local(LocalReason::NeedsSmtpUtf8Address),
                    ),
                    ("c@y.org", perm_local(LocalReason::NeedsSmtpUtf8Address)),
                ]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn smtputf8_offered_is_declared() {
    let mut utf8_header = tx("a@x.org", &["b@y.org"]);
    utf8_header.needs_smtputf8 = true;
    let utf8_address = tx("a@x.org", &["j\u{fc}rgen@example.de"]);
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(utf8_header),
            C("MAIL FROM:<a@x.org> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n554 no\r\n"),
            C("RSET\r\n"),
            E(vec![done(vec![("b@y.org", perm("554 no\r\n"))])]),
            S("250 ok\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(utf8_address),
            C("MAIL FROM:<a@x.org> SMTPUTF8\r\nRCPT TO:<j\u{fc}rgen@example.de>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("250 ok\r\n"),
            E(vec![
                done(vec![("j\u{fc}rgen@example.de", delivered("250 ok\r\n"))]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn service_closing_mid_transaction_is_temporary_for_all() {
    let closing = "421 4.3.2 shutting down\r\n";
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org", "d@y.org"])),
            C(
                "MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nRCPT TO:<d@y.org>\r\nDATA\r\n",
            ),
            S("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n421 4.3.2 shutting down\r\n"),
            E(vec![
                done(vec![
                    ("b@y.org", temp(closing)),
                    ("c@y.org", perm("550 5.1.1 no\r\n")),
                    ("d@y.org", temp(closing)),
                ]),
                ClientEvent::Failed(ClientError::ServiceClosing(reply(closing))),
            ]),
            // Anything after is ignored; no QUIT after a 421.
            S("250 ok\r\n"),
            C(""),
            E(vec![]),
            Lost,
            E(vec![]),
            Check(|s| assert!(s.is_finished())),
        ],
    );
}

#[test]
fn service_closing_after_the_data() {
    let closing = "421 4.4.2 timeout\r\n";
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250 mx\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org"])),
            C("MAIL FROM:<a@x.org>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@y.org>\r\n"),
            S("250 ok\r\n"),
            C("DATA\r\n"),
            S("354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S(closing),
            E(vec![
                done(vec![("b@y.org", temp(closing))]),
                ClientEvent::Failed(ClientError::ServiceClosing(reply(closing))),
            ]),
        ],
    );
}

#[test]
fn idle_421_ends_the_connection() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250 mx\r\n"),
            E(vec![ClientEvent::Ready]),
            S("421 4.4.2 idle too long\r\n"),
            E(vec![ClientEvent::Failed(ClientError::ServiceClosing(
                reply("421 4.4.2 idle too long\r\n"),
            ))]),
        ],
    );
}

#[test]
fn two_transactions_on_one_connection() {
    let mut second = tx("", &["c@z.org"]);
    second.reverse_path = None;
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("250 2.0.0 first\r\n"),
            E(vec![
                done(vec![("b@y.org", delivered("250 2.0.0 first\r\n"))]),
                ClientEvent::Ready,
            ]),
            // A bounce: null reverse-path.
            Submit(second),
            C("MAIL FROM:<>\r\nRCPT TO:<c@z.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(b"bounce\r\n"),
            C("bounce\r\n.\r\n"),
            S("250 2.0.0 second\r\n"),
            E(vec![
                done(vec![("c@z.org", delivered("250 2.0.0 second\r\n"))]),
                ClientEvent::Ready,
            ]),
            Quit,
            C("QUIT\r\n"),
            S("221 bye\r\n"),
            E(vec![ClientEvent::Closed]),
        ],
    );
}

#[test]
fn starttls_required_but_not_offered() {
    let mut cfg = config();
    cfg.tls = TlsPolicy::Required;
    check(
        cfg,
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250 PIPELINING\r\n"),
            C("QUIT\r\n"),
            E(vec![ClientEvent::Failed(ClientError::TlsNotOffered)]),
        ],
    );
}

#[test]
fn starttls_required_but_refused() {
    let mut cfg = config();
    cfg.tls = TlsPolicy::Required;
    check(
        cfg,
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\n"),
            S("454 4.7.0 TLS not available\r\n"),
            C("QUIT\r\n"),
            E(vec![ClientEvent::Failed(ClientError::StartTlsRejected(
                reply("454 4.7.0 TLS not available\r\n"),
            ))]),
        ],
    );
}

#[test]
fn starttls_refused_opportunistic_goes_on_in_plaintext() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\n"),
            S("454 4.7.0 TLS not available\r\n"),
            E(vec![ClientEvent::Ready]),
            Check(|s| assert!(!s.is_tls())),
        ],
    );
}

#[test]
fn starttls_disabled_never_sends_it() {
    let mut cfg = config();
    cfg.tls = TlsPolicy::Disabled;
    check(
        cfg,
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250 STARTTLS\r\n"),
            E(vec![ClientEvent::Ready]),
        ],
    );
}

/// RFC 3207 §4.2: after the handshake the client forgets what it knew and
/// says EHLO again; plaintext that followed the 220 is never read
/// (STARTTLS response injection).
#[test]
fn starttls_then_ehlo_again_with_fresh_extensions() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\n"),
            E(vec![]),
            Check(|s| assert!(s.extensions().pipelining)),
            // The injected "250" would answer the EHLO sent after TLS.
            S("220 2.0.0 go ahead\r\n250-evil\r\n250 PIPELINING\r\n"),
            E(vec![ClientEvent::StartTls]),
            C(""),
            T(ClientTimeout::Command),
            S("250 more plaintext\r\n"),
            TlsDone,
            C(EHLO),
            Check(|s| assert!(s.is_tls() && !s.extensions().pipelining)),
            E(vec![]),
            S("250-mx\r\n250 SIZE 5000\r\n"),
            E(vec![ClientEvent::Ready]),
            Check(|s| {
                assert!(!s.extensions().pipelining && !s.extensions().eight_bit_mime);
                assert_eq!(s.extensions().max_size, Some(5000));
            }),
            // Without PIPELINING now: MAIL alone.
            Submit(tx("a@x.org", &["b@y.org"])),
            C("MAIL FROM:<a@x.org> SIZE=100\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@y.org>\r\n"),
            Lost,
            E(vec![
                done(vec![("b@y.org", temp_local(LocalReason::ConnectionLost))]),
                ClientEvent::Failed(ClientError::ConnectionLost),
            ]),
        ],
    );
}

fn auth_config(tls: TlsPolicy) -> ClientConfig {
    let mut cfg = config();
    cfg.tls = tls;
    cfg.auth = Some(Credentials::new("user", "pass"));
    cfg
}

#[test]
fn auth_plain_after_starttls() {
    check(
        auth_config(TlsPolicy::Required),
        &[
            S(GREETING),
            C(EHLO),
            // AUTH offered before TLS is not used before TLS.
            S("250-mx\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"),
            C("STARTTLS\r\n"),
            S("220 go\r\n"),
            E(vec![ClientEvent::StartTls]),
            TlsDone,
            C(EHLO),
            S("250-mx\r\n250 AUTH LOGIN PLAIN\r\n"),
            // base64("\0user\0pass")
            C("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
            T(ClientTimeout::Command),
            E(vec![]),
            S("235 2.7.0 Authentication successful\r\n"),
            E(vec![ClientEvent::Ready]),
            Check(|s| assert!(s.is_authenticated() && s.is_tls())),
        ],
    );
}

#[test]
fn auth_login_exchange() {
    check(
        auth_config(TlsPolicy::Implicit),
        &[
            S(GREETING),
            C(EHLO),
            // Implicit TLS: STARTTLS is never sent, AUTH goes ahead.
            S("250-mx\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n"),
            C("AUTH LOGIN\r\n"),
            S("334 VXNlcm5hbWU6\r\n"),
            C("dXNlcg==\r\n"),
            S("334 UGFzc3dvcmQ6\r\n"),
            C("cGFzcw==\r\n"),
            E(vec![]),
            S("235 2.7.0 ok\r\n"),
            E(vec![ClientEvent::Ready]),
        ],
    );
}

#[test]
fn auth_refused_fails_the_connection() {
    check(
        auth_config(TlsPolicy::Implicit),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250 AUTH=PLAIN\r\n"),
            C("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
            S("535 5.7.8 bad credentials\r\n"),
            C("QUIT\r\n"),
            E(vec![ClientEvent::Failed(ClientError::AuthFailed(reply(
                "535 5.7.8 bad credentials\r\n",
            )))]),
        ],
    );
}

#[test]
fn auth_never_goes_out_without_tls_by_default() {
    check(
        auth_config(TlsPolicy::Opportunistic),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250 AUTH PLAIN\r\n"),
            C("QUIT\r\n"),
            E(vec![ClientEvent::Failed(ClientError::AuthWithoutTls)]),
        ],
    );
    let mut loopback = auth_config(TlsPolicy::Disabled);
    loopback.allow_plaintext_auth = true;
    check(
        loopback,
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250 AUTH PLAIN\r\n"),
            C("AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
            S("235 ok\r\n"),
            E(vec![ClientEvent::Ready]),
        ],
    );
}

#[test]
fn auth_without_a_usable_mechanism() {
    check(
        auth_config(TlsPolicy::Implicit),
        &[
            S(GREETING),
            C(EHLO),
            S("250 mx\r\n"),
            C("QUIT\r\n"),
            E(vec![ClientEvent::Failed(ClientError::AuthNotOffered)]),
        ],
    );
    check(
        auth_config(TlsPolicy::Implicit),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250 AUTH CRAM-MD5 XOAUTH2\r\n"),
            C("QUIT\r\n"),
            E(vec![ClientEvent::Failed(
                ClientError::NoSupportedAuthMechanism(vec!["CRAM-MD5".into(), "XOAUTH2".into()]),
            )]),
        ],
    );
}

#[test]
fn greeting_refused() {
    check(
        config(),
        &[
            S("554 5.7.1 you are blocklisted\r\n"),
            C("QUIT\r\n"),
            E(vec![ClientEvent::Failed(ClientError::GreetingRefused(
                reply("554 5.7.1 you are blocklisted\r\n"),
            ))]),
        ],
    );
    check(
        config(),
        &[
            S("421 4.3.2 busy\r\n"),
            C(""),
            E(vec![ClientEvent::Failed(ClientError::ServiceClosing(
                reply("421 4.3.2 busy\r\n"),
            ))]),
        ],
    );
}

#[test]
fn multi_line_greeting() {
    check(
        config(),
        &[
            S("220-mx.example.org\r\n220-no UCE\r\n220 ESMTP\r\n"),
            C(EHLO),
            S("250 mx\r\n"),
            E(vec![ClientEvent::Ready]),
        ],
    );
}

#[test]
fn dsn_parameters_only_when_offered() {
    let mut with_dsn = tx("a@x.org", &[]);
    with_dsn.envid = Some("q1+x=y".into());
    with_dsn.ret = Some(Ret::Hdrs);
    with_dsn.recipients = vec![RecipientSpec {
        address: "b@y.org".into(),
        notify: Notify::parse("SUCCESS,FAILURE"),
        orcpt: Some("B+list@y.org".into()),
    }];
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250-PIPELINING\r\n250 DSN\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(with_dsn.clone()),
            C(concat!(
                "MAIL FROM:<a@x.org> RET=HDRS ENVID=q1+2Bx+3Dy\r\n",
                "RCPT TO:<b@y.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2Blist@y.org\r\n",
                "DATA\r\n"
            )),
            S("250 ok\r\n250 ok\r\n554 no\r\n"),
            C("RSET\r\n"),
            E(vec![done(vec![("b@y.org", perm("554 no\r\n"))])]),
            S("250 ok\r\n"),
            E(vec![ClientEvent::Ready]),
        ],
    );
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250-mx\r\n250 PIPELINING\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(with_dsn),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
            Lost,
            E(vec![
                done(vec![("b@y.org", temp_local(LocalReason::ConnectionLost))]),
                ClientEvent::Failed(ClientError::ConnectionLost),
            ]),
        ],
    );
}

/// Envelope addresses from the queue are checked before they reach the
/// wire: a CR LF in one must not become a second command.
#[test]
fn invalid_addresses_are_never_sent() {
    let injected = tx("a@x.org", &["b@y.org>\r\nRSET", "c@y.org"]);
    let bad_sender = tx("a@x.org>\r\nDATA", &["b@y.org"]);
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(injected),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Data(MESSAGE),
            C(MESSAGE_WIRE),
            S("250 ok\r\n"),
            E(vec![
                done(vec![
                    (
                        "b@y.org>\r\nRSET",
                        perm_local(LocalReason::InvalidRecipient),
                    ),
                    ("c@y.org", delivered("250 ok\r\n")),
                ]),
                ClientEvent::Ready,
            ]),
            Submit(bad_sender),
            C(""),
            E(vec![
                done(vec![("b@y.org", perm_local(LocalReason::InvalidSender))]),
                ClientEvent::Ready,
            ]),
            Submit(tx("a@x.org", &["not an address"])),
            C(""),
            E(vec![
                done(vec![(
                    "not an address",
                    perm_local(LocalReason::InvalidRecipient),
                )]),
                ClientEvent::Ready,
            ]),
        ],
    );
}

#[test]
fn timeouts_fail_undecided_recipients() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250 mx\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org", "c@y.org"])),
            C("MAIL FROM:<a@x.org>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@y.org>\r\n"),
            S("550 no\r\n"),
            C("RCPT TO:<c@y.org>\r\n"),
            T(ClientTimeout::Rcpt),
            Expire,
            E(vec![
                done(vec![
                    ("b@y.org", perm("550 no\r\n")),
                    (
                        "c@y.org",
                        temp_local(LocalReason::TimedOut(ClientTimeout::Rcpt)),
                    ),
                ]),
                ClientEvent::Failed(ClientError::TimedOut(ClientTimeout::Rcpt)),
            ]),
            T(ClientTimeout::Idle),
        ],
    );
    check(
        config(),
        &[
            Expire,
            E(vec![ClientEvent::Failed(ClientError::TimedOut(
                ClientTimeout::Initial,
            ))]),
        ],
    );
}

#[test]
fn connection_lost_while_streaming() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S(PIPELINING_EHLO),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org"])),
            C("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            E(vec![ClientEvent::SendData]),
            Lost,
            E(vec![
                done(vec![("b@y.org", temp_local(LocalReason::ConnectionLost))]),
                ClientEvent::Failed(ClientError::ConnectionLost),
            ]),
        ],
    );
}

#[test]
fn connection_lost_after_quit_is_a_close() {
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250 mx\r\n"),
            E(vec![ClientEvent::Ready]),
            Quit,
            C("QUIT\r\n"),
            Lost,
            E(vec![ClientEvent::Closed]),
        ],
    );
}

#[test]
fn protocol_errors_fail_the_connection() {
    // Malformed framing mid-transaction: outcome unknown, so retry.
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250 mx\r\n"),
            E(vec![ClientEvent::Ready]),
            Submit(tx("a@x.org", &["b@y.org"])),
            C("MAIL FROM:<a@x.org>\r\n"),
            S("250 ok\n"),
            E(vec![
                done(vec![("b@y.org", temp_local(LocalReason::ProtocolError))]),
                ClientEvent::Failed(ClientError::Protocol(ReplyError::BareLf)),
            ]),
        ],
    );
    // A reply nobody asked for.
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("250 mx\r\n"),
            E(vec![ClientEvent::Ready]),
            S("250 surprise\r\n"),
            E(vec![ClientEvent::Failed(ClientError::UnexpectedReply {
                context: "no command outstanding",
                reply: reply("250 surprise\r\n"),
            })]),
        ],
    );
    // An intermediate reply where a final one belongs.
    check(
        config(),
        &[
            S(GREETING),
            C(EHLO),
            S("354 what\r\n"),
            E(vec![ClientEvent::Failed(ClientError::UnexpectedReply {
                context: "EHLO reply",
                reply: reply("354 what\r\n"),
            })]),
        ],
    );
    // Not an SMTP server at all.
    check(
        config(),
        &[
            S("HTTP/1.1 400 Bad Request\r\n"),
            E(vec![ClientEvent::Failed(ClientError::Protocol(
                ReplyError::BadCode,
            ))]),
        ],
    );
}

#[test]
fn misuse_is_reported_and_changes_nothing() {
    let mut session = ClientSession::new(config()).unwrap();
    assert_eq!(
        session.submit(tx("a@x.org", &["b@y.org"])),
        Err(UsageError::NotReady)
    );
    assert_eq!(session.quit(), Err(UsageError::NotReady));
    assert_eq!(
        session.tls_established(),
        Err(UsageError::NotInTlsHandshake)
    );
    assert_eq!(session.data_sent(), Err(UsageError::NotSendingData));
    assert_eq!(session.take_output(), b"");
    assert_eq!(session.poll_event(), None);
    session.handle_input(GREETING.as_bytes());
    session.handle_input(b"250 mx\r\n");
    assert_eq!(session.take_output(), EHLO.as_bytes());
    assert_eq!(session.poll_event(), Some(ClientEvent::Ready));
    assert_eq!(
        session.submit(tx("a@x.org", &[])),
        Err(UsageError::NoRecipients)
    );
    assert!(session.is_ready());
    session.submit(tx("a@x.org", &["b@y.org"])).unwrap();
    assert_eq!(
        session.submit(tx("a@x.org", &["b@y.org"])),
        Err(UsageError::NotReady)
    );
    assert_eq!(session.take_output(), b"MAIL FROM:<a@x.org>\r\n");
}

#[test]
fn bad_configs_are_refused() {
    let err = |cfg: ClientConfig| ClientSession::new(cfg).err();
    assert!(matches!(
        err(ClientConfig::new("bad name\r\nQUIT")),
        Some(ConfigError::InvalidHeloName(_))
    ));
    assert!(matches!(
        err(ClientConfig::new("")),
        Some(ConfigError::InvalidHeloName(_))
    ));
    assert!(matches!(
        err(ClientConfig::new("[300.1.1.1]")),
        Some(ConfigError::InvalidHeloName(_))
    ));
    assert_eq!(err(ClientConfig::new("[192.0.2.1]")), None);
    let mut cfg = config();
    cfg.auth = Some(Credentials::new("", "x"));
    assert_eq!(err(cfg.clone()), Some(ConfigError::EmptyUsername));
    cfg.auth = Some(Credentials::new("u", "p\0w"));
    assert_eq!(err(cfg), Some(ConfigError::CredentialsContainNul));
}

#[test]
fn credentials_debug_hides_the_password() {
    let text = format!("{:?}", auth_config(TlsPolicy::Required));
    assert!(text.contains("user"));
    assert!(!text.contains("pass\""), "{text}");
    assert!(text.contains("<redacted>"));
}
