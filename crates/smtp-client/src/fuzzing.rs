//! The body of the `smtp_client_reply` fuzz target
//! (`fuzz/fuzz_targets/smtp_client_reply.rs`), shared with the
//! `fuzz_corpus_replay` test, which runs it over the committed corpus in
//! `cargo test`. It panics when an invariant breaks; see
//! `mailroom_core::fuzzing` for the scheme.
//!
//! Not part of the API: hidden from the docs, free to change.

use mailroom_core::fuzzing::Input;

use crate::{
    ClientConfig, ClientEvent, ClientSession, Credentials, DataEncoder, Notify, RecipientSpec,
    ReplyParser, Ret, TlsPolicy, Transaction,
};

/// `smtp_client_reply`: whatever a hostile server sends,
///
/// * [`ReplyParser`] never panics, yields only codes 200..=559 within its
///   limits, gives the same replies whether the bytes come whole or in
///   pieces, and keeps failing once it failed;
/// * a [`ClientSession`] whose events are answered as the input says never
///   panics, never writes a bare CR or LF (commands and message data
///   alike), reports one outcome per recipient, and stays silent once
///   finished.
///
/// Both run on every input. For the parser, the first byte picks the
/// limits and the chunking and the rest is the server's bytes. For the
/// session the input is a `mailroom_core::fuzzing::Input`: the data is one
/// byte of configuration, then operations; each answer to an event takes
/// one decision byte. An operation byte `op` is: `op % 4` in 0..=1, the next
/// `op / 4 + 1` bytes each mapped to a server reply fragment; 2, the next
/// `op / 4 + 1` bytes raw; 3, by `op / 4 % 4`: the connection drops, the
/// timer fires, or an empty read.
pub fn fuzz_smtp_client_reply(data: &[u8]) {
    reply_parser(data);
    client_session(data);
}

fn reply_parser(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let max_line = [2048, 6, 20, 100][usize::from(control & 3)];
    let max_lines = [100, 1, 3, 20][usize::from((control >> 2) & 3)];
    let chunk = usize::from(control >> 4);

    let run = |pieces: &mut dyn Iterator<Item = &[u8]>| {
        let mut parser = ReplyParser::with_limits(max_line, max_lines);
        let mut replies = Vec::new();
        for piece in pieces {
            parser.push(piece);
            loop {
                match parser.next_reply() {
                    Ok(Some(reply)) => {
                        assert!((200..=559).contains(&reply.code), "code {}", reply.code);
                        assert!(!reply.lines.is_empty() && reply.lines.len() <= max_lines);
                        if let Some((class, _, _)) = reply.enhanced {
                            assert_eq!(u16::from(class), reply.code / 100, "enhanced class");
                        }
                        for line in &reply.lines {
                            assert!(!line.contains(['\r', '\n']), "CR/LF in reply text");
                        }
                        replies.push(reply);
                    }
                    Ok(None) => break,
                    Err(error) => {
                        assert_eq!(parser.next_reply(), Err(error), "error not sticky");
                        return (replies, true);
                    }
                }
            }
        }
        (replies, false)
    };
    let whole = run(&mut std::iter::once(bytes));
    if chunk > 0 {
        let pieces = run(&mut bytes.chunks(chunk));
        assert_eq!(pieces, whole, "chunking changed the replies");
    }
}

fn client_session(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(flags) = input.byte() else { return };
    let mut config = ClientConfig::new("client.example");
    config.tls = match flags & 3 {
        0 => TlsPolicy::Opportunistic,
        1 => TlsPolicy::Disabled,
        2 => TlsPolicy::Required,
        _ => TlsPolicy::Implicit,
    };
    if flags & 4 != 0 {
        config.auth = Some(Credentials::new("user", "pass word"));
    }
    config.allow_plaintext_auth = flags & 8 != 0;
    let Ok(session) = ClientSession::new(config) else {
        panic!("a valid configuration refused");
    };
    let mut driver = Driver {
        session,
        wire: Vec::new(),
        submitted: None,
        finished: false,
    };
    driver.drain(&mut input);
    while let Some(op) = input.byte() {
        let count = usize::from(op >> 2) + 1;
        match op % 4 {
            0 | 1 => {
                let bytes: Vec<u8> = input
                    .bytes(count)
                    .iter()
                    .flat_map(|&b| {
                        SERVER_FRAGMENTS
                            .get(usize::from(b) % SERVER_FRAGMENTS.len())
                            .copied()
                            .unwrap_or_default()
                    })
                    .copied()
                    .collect();
                driver.session.handle_input(&bytes);
            }
            2 => {
                let bytes = input.bytes(count);
                driver.session.handle_input(bytes);
            }
            _ => match (op >> 2) % 4 {
                0 => driver.session.connection_lost(),
                1 => driver.session.timed_out(),
                _ => driver.session.handle_input(b""),
            },
        }
        driver.drain(&mut input);
    }
    check_wire(&driver.wire);
}

/// Answers the session's events as the input says, and keeps what it
/// wrote to the "socket".
struct Driver {
    session: ClientSession,
    /// Everything written to the server: commands and message data.
    wire: Vec<u8>,
    /// The recipients of the transaction in flight.
    submitted: Option<Vec<String>>,
    finished: bool,
}

impl Driver {
    fn drain(&mut self, input: &mut Input<'_>) {
        let was_finished = self.finished;
        while let Some(event) = self.session.poll_event() {
            assert!(!was_finished, "event after the session finished: {event:?}");
            self.event(event, input);
        }
        let output = self.session.take_output();
        assert!(
            !was_finished || output.is_empty(),
            "output after the session finished"
        );
        self.wire.extend(output);
        self.finished = self.session.is_finished();
    }

    /// Events are queued while a read is processed, so by the time the
    /// driver sees one, later replies in the same read may have ended the
    /// session (a server that answers what was never asked): then the
    /// decision methods refuse, and that is the only reason they may.
    fn event(&mut self, event: ClientEvent, input: &mut Input<'_>) {
        let session = &mut self.session;
        match event {
            ClientEvent::Ready => {
                if !session.is_ready() {
                    assert!(
                        session.is_finished(),
                        "Ready, but neither ready nor finished"
                    );
                    return;
                }
                let decision = input.decision();
                match decision % 4 {
                    0 | 1 => {
                        let tx = transaction(decision);
                        self.submitted =
                            Some(tx.recipients.iter().map(|r| r.address.clone()).collect());
                        assert_eq!(session.submit(tx), Ok(()), "submit refused when ready");
                    }
                    2 => assert_eq!(session.quit(), Ok(()), "quit refused when ready"),
                    _ => {}
                }
            }
            ClientEvent::StartTls => {
                // Flush the STARTTLS exchange before the "handshake".
                self.wire.extend(session.take_output());
                if input.decision() % 8 == 7 {
                    session.connection_lost();
                } else if session.tls_established().is_ok() {
                    assert!(session.is_tls());
                } else {
                    assert!(session.is_finished(), "handshake refused mid-session");
                }
            }
            ClientEvent::SendData => {
                self.wire.extend(session.take_output());
                let mut encoder = DataEncoder::new();
                for piece in MESSAGE.chunks(usize::from(input.decision() % 16) + 1) {
                    encoder.encode(piece, &mut self.wire);
                }
                encoder.finish(&mut self.wire);
                if session.data_sent().is_err() {
                    assert!(session.is_finished(), "data refused mid-session");
                }
            }
            ClientEvent::TransactionDone(result) => {
                let Some(recipients) = self.submitted.take() else {
                    panic!("a transaction finished that was never submitted");
                };
                let reported: Vec<&String> = result.per_recipient.iter().map(|(a, _)| a).collect();
                assert_eq!(
                    reported,
                    recipients.iter().collect::<Vec<_>>(),
                    "not one outcome per recipient, in order"
                );
            }
            ClientEvent::Closed | ClientEvent::Failed(_) => {
                assert!(session.is_finished(), "not finished after {event:?}");
            }
        }
    }
}

/// The transaction a decision byte describes: valid, invalid and UTF-8
/// addresses, DSN parameters, 8-bit and SMTPUTF8 needs.
fn transaction(decision: u8) -> Transaction {
    let bob = RecipientSpec::new("bob@example.net");
    let recipients = match (decision >> 2) & 3 {
        0 => vec![bob],
        1 => vec![
            bob,
            RecipientSpec {
                address: "carol@example.com".to_owned(),
                notify: Notify::parse("SUCCESS,FAILURE"),
                orcpt: Some("rfc822;carol+x@example.com".to_owned()),
            },
        ],
        2 => vec![RecipientSpec::new("not an address"), bob],
        _ => vec![RecipientSpec::new("j\u{fc}rgen@b\u{fc}cher.example")],
    };
    Transaction {
        reverse_path: (decision & 0x10 == 0).then(|| "alice@example.org".to_owned()),
        recipients,
        size: MESSAGE.len() as u64,
        needs_8bit: decision & 0x20 != 0,
        needs_smtputf8: decision & 0x40 != 0,
        envid: (decision & 0x80 != 0).then(|| "QQ 314+159".to_owned()),
        ret: (decision & 0x80 != 0).then_some(Ret::Hdrs),
    }
}

/// Lines end in CR LF only: no bare CR or LF anywhere (RFC 5321 §2.3.8).
fn check_wire(wire: &[u8]) {
    for (i, &byte) in wire.iter().enumerate() {
        match byte {
            b'\r' => assert_eq!(wire.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            b'\n' => assert!(i > 0 && wire.get(i - 1) == Some(&b'\r'), "bare LF at {i}"),
            _ => {}
        }
    }
}

/// What the driver sends after 354: dot lines, a bare LF and a bare CR, no
/// final line end, so the encoder has work to do.
const MESSAGE: &[u8] = b"Subject: fuzz\r\n\r\n.leading dot\r\n..\r\n.\r\nbare\nlf\rcr\r\nlast";

/// Server reply fragments for remapped input: greetings, EHLO keywords,
/// every reply class, and the octets that break framing.
const SERVER_FRAGMENTS: [&[u8]; 48] = [
    b"220 mx.example ESMTP\r\n",
    b"220-mx.example\r\n",
    b"250 mx.example\r\n",
    b"250-mx.example\r\n",
    b"250-PIPELINING\r\n",
    b"250-SIZE 100\r\n",
    b"250-SIZE\r\n",
    b"250-8BITMIME\r\n",
    b"250-SMTPUTF8\r\n",
    b"250-DSN\r\n",
    b"250-STARTTLS\r\n",
    b"250-AUTH PLAIN LOGIN\r\n",
    b"250-AUTH=LOGIN\r\n",
    b"250 CHUNKING\r\n",
    b"250 2.1.0 OK\r\n",
    b"250 2.1.5 OK\r\n",
    b"250 2.0.0 queued as X\r\n",
    b"354 go ahead\r\n",
    b"334 \r\n",
    b"334 VXNlcm5hbWU6\r\n",
    b"334 UGFzc3dvcmQ6\r\n",
    b"235 2.7.0 ok\r\n",
    b"220 2.0.0 ready for TLS\r\n",
    b"221 2.0.0 bye\r\n",
    b"421 4.3.2 shutting down\r\n",
    b"450 4.2.0 try later\r\n",
    b"451 4.3.0 error\r\n",
    b"452 4.5.3 too many recipients\r\n",
    b"454 4.7.0 TLS not available\r\n",
    b"500 5.5.2 what\r\n",
    b"502 5.5.1 not implemented\r\n",
    b"503 5.5.1 bad sequence\r\n",
    b"530 5.7.0 authentication required\r\n",
    b"535 5.7.8 bad credentials\r\n",
    b"550 5.1.1 no such user\r\n",
    b"552 5.3.4 too big\r\n",
    b"554 5.7.1 rejected\r\n",
    b"250 4.0.0 mismatched class\r\n",
    b"199 bad code\r\n",
    b"250-x\r\n251 y\r\n",
    b"\r\n",
    b"\r",
    b"\n",
    b" ",
    b"250",
    b"-",
    b"\0",
    b"\xff",
];

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fuzz_corpus_replay() {
        mailroom_core::fuzzing::replay_corpus("smtp_client_reply", fuzz_smtp_client_reply);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn fuzz_smtp_client_reply_random(data in prop::collection::vec(any::<u8>(), 0..200)) {
            fuzz_smtp_client_reply(&data);
        }
    }
}
