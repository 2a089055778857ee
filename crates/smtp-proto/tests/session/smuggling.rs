//! SMTP smuggling regressions (CVE-2023-51764, CVE-2023-51765,
//! CVE-2023-51766; see the smtpsmug README and mox's `TestSmuggle`): a
//! sequence that some receiver might take for the end of data must not end
//! ours, and the message that carries it is rejected once the real
//! CR LF . CR LF arrives. The session then carries on in sync.

use mailroom_core::Address;
use mailroom_smtp_proto::{Event, ForwardPath};
use mailroom_testkit::splittings;

use crate::harness::*;

/// Every fake end-of-data sequence from the brief and smtpsmug, plus NUL
/// next to the dot.
const SEQUENCES: [&[u8]; 16] = [
    b"\n.\n",
    b"\r.\r",
    b"\r.\n",
    b"\n.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\n.\n\r\n",
    b"\r\n.\r\r\n",
    b"\r\n\n.\r\n",
    b"\r\n.\n\r\n",
    b"\r\n.\0\r\n",
    b"\r\n\0.\r\n",
    b"\r\n.\r\0\n",
    b"\0.\r\n",
];

/// True when `seq` (between non-CR/LF text) holds a CR or LF that is not
/// part of a CR LF pair.
fn has_bare_line_ending(seq: &[u8]) -> bool {
    seq.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => seq.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || seq[i - 1] != b'\r',
        _ => false,
    })
}

fn conversation(sequence: &[u8]) -> Vec<u8> {
    let mut input = b"EHLO client.example\r\n\
MAIL FROM:<sender@remote.example>\r\n\
RCPT TO:<alice@local.example>\r\n\
DATA\r\n\
Subject: first\r\n\
\r\n\
body"
        .to_vec();
    input.extend_from_slice(sequence);
    // The smuggled transaction, then the real end of the first message.
    input.extend_from_slice(
        b"MAIL FROM:<evil@remote.example>\r\n\
RCPT TO:<bob@local.example>\r\n\
DATA\r\n\
Subject: smuggled\r\n\
\r\n\
smuggled\r\n\
.\r\n\
MAIL FROM:<second@remote.example>\r\n\
RCPT TO:<carol@local.example>\r\n\
DATA\r\n\
second\r\n\
.\r\n\
QUIT\r\n",
    );
    input
}

#[test]
fn smuggled_transactions_never_happen() {
    for sequence in SEQUENCES {
        let input = conversation(sequence);
        let whole = run(config(), &[&input]);
        let reject = if has_bare_line_ending(sequence) {
            "554 5.6.0 Message rejected: bare CR or LF, lines must end with CRLF (RFC 5321 section 2.3.8)\r\n"
        } else {
            "554 5.6.0 Message rejected: NUL octets are not allowed\r\n"
        };
        let expected = [
            GREETING,
            &ehlo_reply(&[]),
            "250 2.1.0 Ok\r\n",
            "250 2.1.5 Ok\r\n",
            "354 End data with <CR><LF>.<CR><LF>\r\n",
            reject,
            "250 2.1.0 Ok\r\n",
            "250 2.1.5 Ok\r\n",
            "354 End data with <CR><LF>.<CR><LF>\r\n",
            "250 2.0.0 Ok: queued as Q1\r\n",
            "221 2.0.0 mx.local.example closing connection\r\n",
        ]
        .concat();
        assert_eq!(whole.text(), expected, "sequence {sequence:?}");

        let senders: Vec<Option<String>> = whole
            .events
            .iter()
            .filter_map(|e| match e {
                Event::MailFrom { reverse_path, .. } => {
                    Some(reverse_path.as_ref().map(Address::to_string))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            senders,
            vec![
                Some("sender@remote.example".to_string()),
                Some("second@remote.example".to_string())
            ],
            "sequence {sequence:?}"
        );
        let messages: Vec<_> = whole
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Message { envelope, data } => Some((envelope, data)),
                _ => None,
            })
            .collect();
        assert_eq!(messages.len(), 1, "sequence {sequence:?}");
        let (envelope, data) = messages[0];
        assert_eq!(data, b"second\r\n");
        assert_eq!(
            envelope
                .reverse_path
                .as_ref()
                .map(Address::to_string)
                .as_deref(),
            Some("second@remote.example")
        );
        assert!(
            matches!(&envelope.recipients[..], [r] if r.path == ForwardPath::Mailbox(Address::parse("carol@local.example", false).unwrap()))
        );

        for pieces in splittings(&input, 10) {
            assert_eq!(
                run(config(), &pieces),
                whole,
                "sequence {sequence:?} split {:?}",
                pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
            );
        }
    }
}
