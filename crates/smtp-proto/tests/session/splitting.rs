//! The same conversation, cut into chunks every possible way, must give the
//! same output and events (STYLE.md §2.9.2).

use mailroom_testkit::splittings;

use crate::harness::*;

/// Pipelining, DATA with dot-stuffed lines, BDAT chunks, AUTH, and errors
/// (unknown command, bad address, bad sequence, bare LF, over-long line).
const CONVERSATION: &[u8] = b"EHLO client.example\r\n\
MAIL FROM:<sender@remote.example> SIZE=100 BODY=8BITMIME\r\n\
RCPT TO:<alice@local.example> NOTIFY=SUCCESS,FAILURE\r\n\
RCPT TO:<nobody@remote.example>\r\n\
RCPT TO:<Postmaster>\r\n\
DATA\r\n\
Subject: t\r\n\
\r\n\
..leading dot\r\n\
...\r\n\
..\r\n\
end.\r\n\
.\r\n\
FOO\r\n\
MAIL FROM:<bad address>\r\n\
RCPT TO:<a@local.example>\r\n\
NOOP\nNOOP\r\n\
NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n\
AUTH PLAIN\r\n\
AHVzZXIAcGFzcw==\r\n\
MAIL FROM:<>\r\n\
RCPT TO:<bob@local.example>\r\n\
BDAT 12\r\n\
Hello\r\nworldBDAT 2 LAST\r\n\
\r\n\
RSET\r\n\
VRFY u\r\n\
QUIT\r\n";

fn conversation_config() -> mailroom_smtp_proto::ServerConfig {
    mailroom_smtp_proto::ServerConfig {
        max_command_line: 100,
        auth_mechanisms: vec!["PLAIN".to_string()],
        auth_without_tls: true,
        ..config()
    }
}

#[test]
fn whole_conversation_golden() {
    let t = run(conversation_config(), &[CONVERSATION]);
    let expected = [
        GREETING,
        "250-mx.local.example\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n\
         250-SMTPUTF8\r\n250-CHUNKING\r\n250-DSN\r\n250-AUTH PLAIN\r\n250 HELP\r\n",
        "250 2.1.0 Ok\r\n",
        "250 2.1.5 Ok\r\n",
        "550 5.1.1 User unknown\r\n",
        "250 2.1.5 Ok\r\n",
        "354 End data with <CR><LF>.<CR><LF>\r\n",
        "250 2.0.0 Ok: queued as Q1\r\n",
        "500 5.5.2 Command unrecognized\r\n",
        "501 5.1.7 Bad sender address syntax\r\n",
        "503 5.5.1 Need MAIL command\r\n",
        "500 5.5.2 Bare CR or LF in command line: lines must end with CRLF\r\n",
        "500 5.5.6 Line too long\r\n",
        "334 \r\n",
        "235 2.7.0 Authentication successful\r\n",
        "250 2.1.0 Ok\r\n",
        "250 2.1.5 Ok\r\n",
        "250 2.0.0 12 octets received\r\n",
        "250 2.0.0 Ok: queued as Q1\r\n",
        "250 2.0.0 Ok\r\n",
        "250 2.1.5 <u@local.example>\r\n",
        "221 2.0.0 mx.local.example closing connection\r\n",
    ]
    .concat();
    assert_eq!(t.text(), expected);
    let messages: Vec<&[u8]> = t
        .events
        .iter()
        .filter_map(|e| match e {
            mailroom_smtp_proto::Event::Message { data, .. } => Some(data.as_slice()),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages,
        vec![
            &b"Subject: t\r\n\r\n.leading dot\r\n..\r\n.\r\nend.\r\n"[..],
            &b"Hello\r\nworld\r\n"[..]
        ]
    );
    assert!(t.closed);
}

#[test]
fn every_splitting_gives_the_same_transcript() {
    let whole = run(conversation_config(), &[CONVERSATION]);
    for pieces in splittings(CONVERSATION, 200) {
        let t = run(conversation_config(), &pieces);
        assert_eq!(
            t,
            whole,
            "split into {} pieces: {:?}",
            pieces.len(),
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
        );
    }
}
