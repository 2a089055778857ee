//! Property tests: DATA transparency round trip, and fuzz-like runs that
//! must never panic and must always produce well-formed replies.

use mailroom_smtp_proto::{Event, ServerConfig, ServerSession, dot};
use proptest::prelude::*;

use crate::harness::*;

const TRANSACTION: &[u8] =
    b"EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\nDATA\r\n";

/// Cuts `input` at the given fractions (sorted, deduplicated).
fn cut<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(&input[start..p]);
        start = p;
    }
    out.push(&input[start..]);
    out
}

fn message_of(t: &Transcript) -> Option<Vec<u8>> {
    t.events.iter().find_map(|e| match e {
        Event::Message { data, .. } => Some(data.clone()),
        _ => None,
    })
}

/// A text line: any octets but CR, LF and NUL.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(
            any::<u8>().prop_filter("no CR/LF/NUL", |b| !matches!(b, b'\r' | b'\n' | 0)),
            0..120
        ),
        // Short lines of dots: the interesting cases for transparency.
        prop::collection::vec(prop::sample::select(vec![b'.', b'a', b' ']), 0..6),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// dot::stuff + ".\r\n" through DATA gives back exactly the message.
    #[test]
    fn stuffed_data_round_trips(lines in prop::collection::vec(line(), 0..30), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let mut data = Vec::new();
        for l in &lines {
            data.extend_from_slice(l);
            data.extend_from_slice(b"\r\n");
        }
        let mut input = TRANSACTION.to_vec();
        input.extend_from_slice(&dot::stuff(&data));
        input.extend_from_slice(dot::END_OF_DATA);
        let t = run(config(), &cut(&input, &cuts));
        prop_assert_eq!(message_of(&t), Some(data));
    }

    /// A message that does not end in CR LF gets one from stuff().
    #[test]
    fn stuff_appends_the_final_crlf(lines in prop::collection::vec(line(), 1..5)) {
        let data = lines.join(&b"\r\n"[..]);
        prop_assume!(!data.is_empty() && !data.ends_with(b"\r\n"));
        let mut input = TRANSACTION.to_vec();
        input.extend_from_slice(&dot::stuff(&data));
        input.extend_from_slice(dot::END_OF_DATA);
        let mut want = data.clone();
        want.extend_from_slice(b"\r\n");
        prop_assert_eq!(message_of(&run(config(), &[&input])), Some(want));
    }

    /// A NUL anywhere in the message rejects it (RFC 2045 §2.7/§2.8).
    #[test]
    fn nul_rejects_the_message(before in line(), after in line()) {
        let mut data = before;
        data.push(0);
        data.extend_from_slice(&after);
        data.extend_from_slice(b"\r\n");
        let mut input = TRANSACTION.to_vec();
        input.extend_from_slice(&dot::stuff(&data));
        input.extend_from_slice(b".\r\nNOOP\r\n");
        let t = run(config(), &[&input]);
        prop_assert_eq!(message_of(&t), None);
        prop_assert!(t.text().ends_with("554 5.6.0 Message rejected: NUL octets are not allowed\r\n250 2.0.0 Ok\r\n"), "{}", t.text());
    }

    /// Random bytes in random chunks: no panic, well-formed output
    /// (checked inside `run`).
    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..2000), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let mut decide = auto_accept;
        run_with(fuzz_config(), &cut(&input, &cuts), &mut decide);
        run_with(fuzz_config(), &cut(&input, &cuts), &mut scripted);
    }

    /// Random sequences of valid-looking commands and fragments: no panic,
    /// well-formed output, and (without STARTTLS, whose discarding depends
    /// on packet boundaries) the same transcript however the input is cut.
    #[test]
    fn command_soup(parts in prop::collection::vec(fragment(), 0..40), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let input = parts.concat();
        let whole = run(fuzz_config(), &[&input]);
        let split = run(fuzz_config(), &cut(&input, &cuts));
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        let one_by_one = run(fuzz_config(), &bytewise);
        if !input.windows(8).any(|w| w.eq_ignore_ascii_case(b"STARTTLS")) {
            prop_assert_eq!(&split, &whole);
            prop_assert_eq!(&one_by_one, &whole);
        }
        run_with(fuzz_config(), &cut(&input, &cuts), &mut auto_accept);
    }
}

fn fuzz_config() -> ServerConfig {
    ServerConfig {
        max_command_line: 64,
        max_text_line: 80,
        max_message_size: 300,
        max_recipients: 3,
        max_errors: 40,
        vrfy: true,
        auth_without_tls: true,
        ..full_config()
    }
}

/// A driver that says yes to everything it can.
fn auto_accept(session: &mut ServerSession, event: &Event) {
    match event {
        Event::StartTls => session.tls_established(),
        Event::Auth { .. } => session.auth_challenge("Y2hhbGxlbmdl"),
        Event::AuthResponse { .. } => session.auth_succeeded("someone"),
        _ => session.accept(),
    }
}

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        b"EHLO c\r\n",
        b"HELO c\r\n",
        b"MAIL FROM:<s@remote.example>\r\n",
        b"MAIL FROM:<> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n",
        b"RCPT TO:<u@local.example>\r\n",
        b"RCPT TO:<x@remote.example> NOTIFY=NEVER\r\n",
        b"RCPT TO:<Postmaster>\r\n",
        b"DATA\r\n",
        b".\r\n",
        b"..\r\n",
        b"BDAT 5\r\n",
        b"BDAT 3 LAST\r\n",
        b"BDAT 0 LAST\r\n",
        b"STARTTLS\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH LOGIN dXNlcg==\r\n",
        b"AHVzZXIAcGFzcw==\r\n",
        b"*\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"VRFY u\r\n",
        b"EXPN u\r\n",
        b"HELP\r\n",
        b"QUIT\r\n",
        b"abc",
        b"\r\n",
        b"\r",
        b"\n",
        b".",
        b"\0",
        b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ];
    prop_oneof![
        4 => prop::sample::select(fixed).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 0..10),
    ]
}
