//! Hostile input: deep nesting, random MIME-shaped noise. `describe` and
//! `attachments` must return (a tree or an error), never panic, never
//! overflow the stack.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::panic;
use std::sync::Once;
use std::thread;

use mailroom_mime::{MAX_DEPTH, MimeError, attachments, describe};
use proptest::prelude::*;

/// Runs `f` on a thread with a small stack, as a server task might have.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deeply_nested_multiparts() {
    on_small_stack(|| {
        let depth = 20_000;
        let mut raw = String::from("Subject: deep\n");
        for level in 0..depth {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n"
            ));
        }
        raw.push_str("Content-Type: text/plain\n\nleaf\n");
        for level in (0..depth).rev() {
            raw.push_str(&format!("--b{level}--\n"));
        }
        let summary = describe(raw.as_bytes()).unwrap();
        assert_eq!(summary.parts.len(), MAX_DEPTH);
        assert!(summary.parts.last().unwrap().problem.is_some());
        attachments(raw.as_bytes()).unwrap();
    });
}

#[test]
fn deeply_nested_messages() {
    on_small_stack(|| {
        let depth = 20_000;
        let mut raw = String::new();
        for _ in 0..depth {
            raw.push_str("Subject: nested\nContent-Type: message/rfc822\n\n");
        }
        raw.push_str("Subject: innermost\n\nleaf\n");
        let summary = describe(raw.as_bytes()).unwrap();
        assert_eq!(summary.parts.len(), MAX_DEPTH);
        let found = attachments(raw.as_bytes()).unwrap();
        assert_eq!(found.len(), 1);
    });
}

#[test]
fn deeply_nested_messages_in_multiparts() {
    on_small_stack(|| {
        let depth = 5_000;
        let mut raw = String::new();
        for level in 0..depth {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"m{level}\"\n\n--m{level}\nContent-Type: message/rfc822\n\n"
            ));
        }
        raw.push_str("Subject: innermost\n\nleaf\n");
        for level in (0..depth).rev() {
            raw.push_str(&format!("--m{level}--\n"));
        }
        describe(raw.as_bytes()).unwrap();
        attachments(raw.as_bytes()).unwrap();
    });
}

#[test]
fn many_parts() {
    let mut raw = String::from("Content-Type: multipart/mixed; boundary=x\n\n");
    for n in 0..20_000 {
        raw.push_str(&format!(
            "--x\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=same.bin\n\n{n}\n"
        ));
    }
    raw.push_str("--x--\n");
    let found = attachments(raw.as_bytes()).unwrap();
    assert_eq!(found.len(), 20_000);
    let mut names: Vec<&str> = found.iter().map(|a| a.filename.as_str()).collect();
    assert_eq!(names[0], "same.bin");
    assert_eq!(names[1], "same-2.bin");
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 20_000, "file names are not unique");
}

/// mail-parser 0.11.9 `decode_quoted_printable_mime`: a quoted-printable
/// part whose last line is a soft line break (`=` CRLF) right before the
/// delimiter makes `buf.len() - (crlf.len() + 1)` underflow. With overflow
/// checks that panics; the workspace turns them off for mail-parser in every
/// profile (Cargo.toml), so the subtraction wraps as in release, leaving a
/// stray `-` at the end of the decoded part, and the message parses. Found
/// by `mime_shaped_noise_never_fails_the_parser`.
#[test]
fn mail_parser_bug_soft_break_before_delimiter() {
    let raw = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9=\r\n--b--\r\n";
    let summary = describe(raw).unwrap();
    assert_eq!(summary.parts.len(), 2);
    attachments(raw).unwrap();
}

/// mail-parser 0.11.9 `parse_`: a headerless digest part (so
/// message/rfc822) whose body is only `Content-Type: message/rfc822` and
/// empty lines trips `debug_assert!(false, "Invalid part ID, could not find
/// multipart.")`. The workspace disables mail-parser's debug assertions in
/// every profile, so it parses as in release. Found by
/// `mime_shaped_noise_never_fails_the_parser`.
#[test]
fn mail_parser_bug_empty_nested_digest_message() {
    let raw = b"Content-Type: multipart/digest; boundary=a\n\n--a\n\n\
        Content-Type: message/rfc822\n\n\n--a--";
    describe(raw).unwrap();
}

/// Lines a MIME parser cares about, to build inputs that reach deep states.
fn mime_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("--a".to_owned()),
        Just("--a--".to_owned()),
        Just("--b".to_owned()),
        Just("--b--".to_owned()),
        Just("Content-Type: multipart/mixed; boundary=a".to_owned()),
        Just("Content-Type: multipart/alternative; boundary=\"b\"".to_owned()),
        Just("Content-Type: multipart/digest; boundary=a".to_owned()),
        Just("Content-Type: message/rfc822".to_owned()),
        Just("Content-Type: text/plain; charset=iso-2022-jp".to_owned()),
        Just("Content-Type: application/pdf; name*=utf-8''%C3%A9.pdf".to_owned()),
        Just("Content-Transfer-Encoding: base64".to_owned()),
        Just("Content-Transfer-Encoding: quoted-printable".to_owned()),
        Just("Content-Disposition: attachment; filename=\"../x\"".to_owned()),
        Just("Subject: =?utf-8?b?w7w=?= =?x?q?=FF?=".to_owned()),
        Just(" folded".to_owned()),
        Just("aGVsbG8=".to_owned()),
        Just("=E9=\r".to_owned()),
        "[ -~]{0,20}",
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn mime_shaped_noise_never_fails_the_parser(
        lines in proptest::collection::vec(mime_line(), 0..60),
        crlf in any::<bool>(),
    ) {
        let raw = lines.join(if crlf { "\r\n" } else { "\n" });
        check(raw.as_bytes())?;
    }

    #[test]
    fn random_bytes_never_fail_the_parser(raw in any::<Vec<u8>>()) {
        check(&raw)?;
    }
}

/// A tree (or "not a message"), and attachments consistent with the
/// tree. A caught panic is accepted only in debug builds, and only when it
/// is one of mail-parser's debug-only checks (see `is_debug_only_panic`).
fn check(raw: &[u8]) -> Result<(), TestCaseError> {
    install_panic_recorder();
    let described = describe(raw);
    let describe_panic = take_last_panic();
    let found = attachments(raw);
    let attachments_panic = take_last_panic();
    match (described, found) {
        (Ok(summary), Ok(found)) => {
            let listed = summary
                .parts
                .iter()
                .filter(|p| p.attachment.is_some())
                .count();
            prop_assert_eq!(listed, found.len());
            let _ = summary.render();
        }
        (Err(MimeError::NotAMessage), Err(MimeError::NotAMessage)) => {}
        (Err(MimeError::ParserFailed), Err(MimeError::ParserFailed)) => prop_assert!(
            is_debug_only_panic(describe_panic.as_ref())
                && is_debug_only_panic(attachments_panic.as_ref()),
            "mail-parser panicked: {describe_panic:?} on {:?}",
            String::from_utf8_lossy(raw)
        ),
        other => prop_assert!(false, "{:?} on {:?}", other, String::from_utf8_lossy(raw)),
    }
    Ok(())
}

thread_local! {
    /// (file, message) of the last panic on this thread.
    static LAST_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

fn install_panic_recorder() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let file = info
                .location()
                .map(|l| l.file().to_owned())
                .unwrap_or_default();
            LAST_PANIC.with(|last| *last.borrow_mut() = Some((file, message)));
            default(info);
        }));
    });
}

fn take_last_panic() -> Option<(String, String)> {
    LAST_PANIC.with(|last| last.borrow_mut().take())
}

/// mail-parser panics that only debug builds have: integer overflow checks
/// and its `debug_assert!`s. Release builds wrap or skip them and return a
/// (best-effort) message, so production never sees these; in debug builds
/// `describe` catches them as `ParserFailed`. Any other panic (an index out
/// of bounds, an unwrap) would reach release builds and fails the test.
fn is_debug_only_panic(panic: Option<&(String, String)>) -> bool {
    const DEBUG_ASSERTS: &[&str] = &[
        "Invalid part ID, could not find multipart.",
        "Invalid part ID, could not find message.",
        "Failed to restore parent message. Aborting.",
        "This should not have happened.",
    ];
    cfg!(debug_assertions)
        && panic.is_some_and(|(file, message)| {
            file.contains("mail-parser-0.11.9")
                && ((message.starts_with("attempt to") && message.ends_with("with overflow"))
                    || DEBUG_ASSERTS.contains(&message.as_str()))
        })
}
