//! Hostile input: deep nesting, random MIME-shaped noise. `describe` and
//! `attachments` must return (a tree or an error), never panic, never
//! overflow the stack.

#![allow(clippy::unwrap_used)]

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

/// A tree (or "not a message"), never a caught panic, and attachments
/// consistent with the tree.
fn check(raw: &[u8]) -> Result<(), TestCaseError> {
    match (describe(raw), attachments(raw)) {
        (Ok(summary), Ok(found)) => {
            let listed = summary.parts.iter().filter(|p| p.attachment.is_some()).count();
            prop_assert_eq!(listed, found.len());
            let _ = summary.render();
        }
        (Err(MimeError::NotAMessage), Err(MimeError::NotAMessage)) => {}
        other => prop_assert!(false, "{:?} on {:?}", other, String::from_utf8_lossy(raw)),
    }
    Ok(())
}
