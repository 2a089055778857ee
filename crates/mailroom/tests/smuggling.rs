//! SMTP smuggling regressions, one test per end-of-data look-alike.
//!
//! See: "SMTP Smuggling" (SEC Consult, December 2023; CVE-2023-51764 Postfix,
//! CVE-2023-51765 Sendmail, CVE-2023-51766 Exim) and the smtpsmug tool's
//! README. End of data is exactly CRLF "." CRLF (RFC 5321 §4.1.1.4); a
//! receiver that also ends the data at a bare-LF or bare-CR variant lets a
//! sender hide a second, forged transaction inside one message.
//!
//! Each test sends, inside one DATA, a body that contains the sequence
//! followed by a complete forged transaction, then the real CRLF.CRLF, then
//! a normal second transaction on the same connection. The first message
//! must be rejected, or accepted as ONE message that still contains the
//! forged commands; the forged "smuggled" message must never exist on its
//! own; the Maildir must hold exactly as many messages as there were 250
//! replies to end-of-data; and the second, normal message must arrive.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Env, Reply, contains, dot_stuff, simple_message};

const FIRST_MARK: &[u8] = b"first-message-text";
const SECOND_MARK: &str = "second-normal-message";
const SMUGGLED_MARK: &[u8] = b"smuggled";

fn smuggle(tag: &str, sequence: &[u8]) {
    let env = Env::start(tag);
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    smtp.ok("MAIL FROM:<sender@remote.test>", 250);
    smtp.ok("RCPT TO:<alice@example.test>", 250);
    smtp.ok("DATA", 354);

    let mut body = b"From: sender@remote.test\r\nSubject: carrier\r\n\r\n".to_vec();
    body.extend_from_slice(FIRST_MARK);
    body.extend_from_slice(sequence);
    body.extend_from_slice(b"MAIL FROM:<evil@x>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    body.extend_from_slice(SMUGGLED_MARK);
    body.extend_from_slice(b"\r\n\r\n.\r\n");
    smtp.send(&body);

    // A correct server answers once (250 or 5xx); a vulnerable one answers
    // the forged commands too. Collect whatever comes.
    // The first reply may take a while (fsync); any further ones follow at once.
    let mut after_first = vec![smtp.read_reply()];
    after_first.extend(smtp.read_replies_until_quiet(Duration::from_millis(1000)));
    assert!(
        after_first[0].code == 250 || (500..600).contains(&after_first[0].code),
        "first reply after the carrier message must be 250 or 5xx: {}",
        after_first[0]
    );

    // The second, normal transaction on the same connection.
    let second = simple_message(SECOND_MARK, "an honest message after the attempt");
    smtp.ok("MAIL FROM:<sender@remote.test>", 250);
    smtp.ok("RCPT TO:<alice@example.test>", 250);
    smtp.ok("DATA", 354);
    smtp.send(&dot_stuff(&second));
    smtp.read_reply().expect(250, "", "second, normal message");
    smtp.quit();

    // Every reply that directly follows a 354 answers an end of data.
    let transcript: &[Reply] = &smtp.transcript;
    let accepted = transcript
        .windows(2)
        .filter(|w| w[0].code == 354 && w[1].code == 250)
        .count();
    let all: Vec<String> = transcript.iter().map(ToString::to_string).collect();

    let stored = env.messages("alice");
    assert_eq!(
        stored.len(),
        accepted,
        "Maildir holds {} messages but the server sent {accepted} 250s to end of data; transcript:\n{}",
        stored.len(),
        all.join("\n")
    );
    let mut seen_second = false;
    for message in &stored {
        let body = message.body();
        if contains(body, SECOND_MARK.as_bytes()) {
            assert!(
                !contains(body, SMUGGLED_MARK),
                "the normal message contains smuggled text"
            );
            seen_second = true;
            continue;
        }
        // Otherwise it can only be the carrier, whole.
        assert!(
            contains(body, FIRST_MARK)
                && contains(body, SMUGGLED_MARK)
                && contains(body, b"MAIL FROM:<evil@x>"),
            "a message that is not the whole carrier was delivered (smuggling!): {}\ntranscript:\n{}",
            common::show(body),
            all.join("\n")
        );
    }
    assert!(seen_second, "the normal second message did not arrive");
}

macro_rules! smuggling_tests {
    ($($name:ident => $seq:expr,)*) => {
        $(
            #[test]
            fn $name() {
                smuggle(stringify!($name), $seq);
            }
        )*
    };
}

smuggling_tests! {
    lf_dot_lf => b"\n.\n",
    cr_dot_cr => b"\r.\r",
    cr_dot_lf => b"\r.\n",
    lf_dot_cr => b"\n.\r",
    lf_dot_crlf => b"\n.\r\n",
    crlf_dot_lf => b"\r\n.\n",
    cr_dot_crlf => b"\r.\r\n",
    crlf_dot_cr => b"\r\n.\r",
    crlf_nul_dot_crlf => b"\r\n\x00.\r\n",
    crlf_dot_nul_crlf => b"\r\n.\x00\r\n",
}
