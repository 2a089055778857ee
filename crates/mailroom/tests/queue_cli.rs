#![allow(clippy::unwrap_used)]
//! `mailroom sendmail` and `mailroom queue ...` as a user runs them, against
//! a running server on the same data directory.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;

const DELIVERY: Duration = Duration::from_secs(30);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `mailroom --data-dir D sendmail ARGS` with `input` on stdin.
fn sendmail(data_dir: &Path, args: &[&str], input: &str) -> Output {
    let mut all = vec!["sendmail"];
    all.extend_from_slice(args);
    mailroom(data_dir, &all, Some(input))
}

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}, got {}; stdout: {} stderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

fn queue(data_dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    mailroom(data_dir, &all, None)
}

fn queue_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = queue(data_dir, args);
    assert_exit(&out, 0, &format!("queue {}", args.join(" ")));
    stdout(&out)
}

/// Queue ids in `queue list` output (a trailing `!` marks a held message).
fn queue_ids(list: &str) -> Vec<(String, bool)> {
    list.lines()
        .filter(|l| !l.starts_with(char::is_whitespace) && !l.starts_with("--"))
        .filter(|l| !l.contains("Mail queue is empty"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|id| match id.strip_suffix('!') {
            Some(id) => (id.to_string(), true),
            None => (id.to_string(), false),
        })
        .collect()
}

fn users_env(tag: &str, users: &[&str], config: Option<String>) -> Env {
    Env::with(
        tag,
        ServerOptions {
            users: users.iter().map(|u| u.to_string()).collect(),
            config,
            ..ServerOptions::default()
        },
    )
}

#[test]
fn sendmail_t_delivers_and_removes_bcc() {
    let env = users_env("sendmail-t", &["alice", "bob", "carol", "dave"], None);
    let data = env.dir.data_dir();
    let input = "From: Sender <sender@remote.test>\n\
                 To: Alice <alice@example.test>\n\
                 Cc: bob@example.test\n\
                 Bcc: carol@example.test\n\
                 Subject: sendmail -t\n\
                 \n\
                 Hello from sendmail.\n";
    let out = sendmail(
        &data,
        &["-f", "sender@remote.test", "-t", "dave@example.test"],
        input,
    );
    assert_exit(&out, 0, "sendmail -t");

    for user in ["alice", "bob", "carol", "dave"] {
        assert!(
            wait_for(DELIVERY, || env.messages(user).len() == 1),
            "{user} did not get the message; queue:\n{}\nserver:\n{}",
            queue_ok(&data, &["list"]),
            env.server.stderr()
        );
        let m = &env.messages(user)[0];
        m.assert_well_formed();
        assert_eq!(m.return_path(), "sender@remote.test", "{user}");
        let text = m.text();
        assert!(text.contains("Subject: sendmail -t"), "{user}: {text}");
        assert!(text.contains("Hello from sendmail."), "{user}: {text}");
        assert!(
            !text.to_ascii_lowercase().contains("\nbcc:"),
            "{user}: Bcc header not removed:\n{text}"
        );
        // A submission agent adds the missing Message-ID and Date (RFC 6409 §8).
        assert!(
            text.contains("Message-ID:") || text.contains("Message-Id:"),
            "{user}: {text}"
        );
        assert!(text.contains("Date:"), "{user}: {text}");
    }
}

#[test]
fn sendmail_dot_handling() {
    let env = users_env("sendmail-dot", &["alice", "bob"], None);
    let data = env.dir.data_dir();

    // -i: a lone "." is message text.
    let input = "Subject: with -i\n\nbefore\n.\nafter the dot\n";
    let out = sendmail(
        &data,
        &["-i", "-f", "bob@example.test", "alice@example.test"],
        input,
    );
    assert_exit(&out, 0, "sendmail -i");
    assert!(
        wait_for(DELIVERY, || env.messages("alice").len() == 1),
        "sendmail -i message not delivered"
    );
    let text = env.messages("alice")[0].text();
    assert!(
        text.contains("before\r\n.\r\nafter the dot\r\n"),
        "-i must keep the dot line:\n{text}"
    );

    // Without -i: a "." line ends the message.
    let input = "Subject: without -i\n\nbefore\n.\nnot part of the message\n";
    let out = sendmail(
        &data,
        &["-f", "bob@example.test", "alice@example.test"],
        input,
    );
    assert_exit(&out, 0, "sendmail without -i");
    assert!(
        wait_for(DELIVERY, || env.messages("alice").len() == 2),
        "sendmail message not delivered"
    );
    let text = env
        .messages("alice")
        .into_iter()
        .map(|m| m.text())
        .find(|t| t.contains("Subject: without -i"))
        .expect("second message");
    assert!(text.contains("before\r\n"), "{text}");
    assert!(
        !text.contains("not part of the message"),
        "text after the \".\" line was kept:\n{text}"
    );
    // Only alice was named.
    assert!(env.messages("bob").is_empty());
}

#[test]
fn sendmail_exit_codes() {
    let dir = TestDir::new("sendmail-exit");
    add_user(&dir.data_dir(), "alice");
    let data = dir.data_dir();
    let msg = "Subject: x\n\nbody\n";

    // No recipients: neither arguments nor -t.
    let out = sendmail(&data, &["-f", "alice@example.test"], msg);
    assert_exit(&out, 64, "no recipients");
    // -t but no recipient header.
    let out = sendmail(&data, &["-t"], msg);
    assert_exit(&out, 64, "-t without To/Cc/Bcc");
    // A malformed recipient.
    let out = sendmail(&data, &["bad@@example.test"], msg);
    assert_exit(&out, 67, "bad recipient");
    assert!(!stderr(&out).is_empty(), "a message on stderr");
    // No data dir: temporary failure, caller should retry.
    let missing = dir.path().join("does-not-exist");
    let out = sendmail(&missing, &["alice@example.test"], msg);
    assert_exit(&out, 75, "missing data dir");
    assert!(
        stderr(&out).contains("does-not-exist"),
        "error names the dir: {}",
        stderr(&out)
    );
    assert!(!missing.exists(), "sendmail must not create the data dir");
    // Nothing was queued by the failures.
    let list = queue_ok(&data, &["list"]);
    assert!(queue_ids(&list).is_empty(), "queue:\n{list}");
}

fn held_config(port: u16) -> String {
    format!(
        "[relay_map]\n\
         \"down.test\" = \"127.0.0.1:{port}\"\n\
         [queue]\n\
         retry_schedule = [\"1h\"]\n"
    )
}

/// Queues a message for down.test with sendmail and waits until `queue list`
/// shows it with the reply of a failed attempt; returns its id.
fn queue_for_down_host(data: &Path, subject: &str) -> String {
    let input = format!("Subject: {subject}\n\nqueued body\n");
    let out = sendmail(
        data,
        &["-f", "alice@example.test", "user@down.test"],
        &input,
    );
    assert_exit(&out, 0, "sendmail to down.test");
    let mut list = String::new();
    let ok = wait_for(DELIVERY, || {
        list = queue_ok(data, &["list"]);
        list.lines().any(|l| l.trim_start().starts_with('(')) && !queue_ids(&list).is_empty()
    });
    assert!(ok, "queue list never showed the failed attempt:\n{list}");
    let ids = queue_ids(&list);
    assert_eq!(ids.len(), 1, "{list}");
    assert!(list.contains("user@down.test"), "{list}");
    assert!(list.contains("alice@example.test"), "{list}");
    ids[0].0.clone()
}

#[test]
fn queue_list_show_hold_release_flush() {
    let port = closed_port();
    let env = users_env("queue-hold", &["alice"], Some(held_config(port)));
    let data = env.dir.data_dir();
    let id = queue_for_down_host(&data, "held for a while");

    let show = queue_ok(&data, &["show", &id]);
    assert!(show.contains(&id), "{show}");
    assert!(show.contains("user@down.test"), "{show}");
    assert!(show.contains("Subject: held for a while"), "{show}");

    let out = queue(&data, &["hold", &id]);
    assert_exit(&out, 0, "queue hold");
    let list = queue_ok(&data, &["list"]);
    assert_eq!(queue_ids(&list), vec![(id.clone(), true)], "{list}");

    // The destination comes up; a held message stays put even when flushed.
    let sink = Sink::start_on(
        format!("127.0.0.1:{port}").parse().unwrap(),
        SinkScript::default(),
    );
    let out = queue(&data, &["flush"]);
    assert_exit(&out, 0, "queue flush");
    std::thread::sleep(Duration::from_secs(4));
    assert!(sink.messages().is_empty(), "a held message was delivered");
    let list = queue_ok(&data, &["list"]);
    assert_eq!(queue_ids(&list), vec![(id.clone(), true)], "{list}");

    let out = queue(&data, &["release", &id]);
    assert_exit(&out, 0, "queue release");
    let out = queue(&data, &["flush"]);
    assert_exit(&out, 0, "queue flush");
    assert!(
        sink.wait_messages(1, DELIVERY),
        "released + flushed message not delivered; queue:\n{}\nserver:\n{}",
        queue_ok(&data, &["list"]),
        env.server.stderr()
    );
    let got = &sink.messages()[0];
    assert!(contains(&got.data, b"Subject: held for a while"));
    assert!(
        wait_for(Duration::from_secs(10), || queue_ok(&data, &["list"])
            .contains("Mail queue is empty")),
        "queue not empty after delivery:\n{}",
        queue_ok(&data, &["list"])
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sink.messages().len(), 1, "delivered once");
}

#[test]
fn queue_delete_and_unknown_ids() {
    let port = closed_port();
    let env = users_env("queue-delete", &["alice"], Some(held_config(port)));
    let data = env.dir.data_dir();
    let id = queue_for_down_host(&data, "to be deleted");

    let out = queue(&data, &["delete", &id]);
    assert_exit(&out, 0, "queue delete");
    let list = queue_ok(&data, &["list"]);
    assert!(list.contains("Mail queue is empty"), "{list}");
    assert!(queue_ids(&list).is_empty(), "{list}");

    // The deleted id, and one that never existed: exit 1, one clear line.
    for bad in [id.as_str(), "NOSUCHID123"] {
        for cmd in ["show", "hold", "release", "delete"] {
            let out = queue(&data, &[cmd, bad]);
            assert_exit(&out, 1, &format!("queue {cmd} {bad}"));
            let err = stderr(&out);
            assert!(
                err.contains(bad) && err.to_ascii_lowercase().contains("no such"),
                "queue {cmd} {bad}: unclear error: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }

    // The server does not resurrect it, and nobody gets a bounce for it.
    std::thread::sleep(Duration::from_secs(2));
    assert!(queue_ok(&data, &["list"]).contains("Mail queue is empty"));
    assert!(
        env.messages("alice").is_empty(),
        "no bounce for a deleted message"
    );
}
