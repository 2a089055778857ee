//! The `mailroom user ...` commands and the CLI's error contract
//! (INTERFACE.md): exit 0 success, 1 failure, 2 usage; errors are one line
//! on stderr, never a panic or a backtrace. Users can be managed while the
//! server runs.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::{Env, PASSWORD, TestDir, add_user, mailroom, simple_message};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code `code`, and a short, panic-free error message on stderr.
fn assert_clean_failure(out: &Output, code: i32, what: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exit status; stderr:\n{err}"
    );
    assert!(!err.trim().is_empty(), "{what}: no error message");
    assert!(
        !err.contains("panicked")
            && !err.contains("RUST_BACKTRACE")
            && !err.contains("stack backtrace"),
        "{what}: a panic instead of an error message:\n{err}"
    );
}

#[test]
fn user_add_list_passwd_del() {
    let dir = TestDir::new("cli-users");
    let data = dir.data_dir();
    add_user(&data, "alice");
    add_user(&data, "bob");

    let out = mailroom(&data, &["user", "list"], None);
    assert!(out.status.success(), "user list: {}", stderr(&out));
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        listed,
        vec!["alice".to_string(), "bob".to_string()],
        "user list output"
    );

    let out = mailroom(
        &data,
        &["user", "passwd", "alice", "--password-stdin"],
        Some("a new password\n"),
    );
    assert!(out.status.success(), "user passwd: {}", stderr(&out));

    let out = mailroom(&data, &["user", "del", "bob"], None);
    assert!(out.status.success(), "user del: {}", stderr(&out));
    let out = mailroom(&data, &["user", "list"], None);
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        list.contains("alice") && !list.contains("bob"),
        "after del bob: {list:?}"
    );
}

#[test]
fn user_errors_exit_1_with_one_line() {
    let dir = TestDir::new("cli-errors");
    let data = dir.data_dir();
    add_user(&data, "alice");

    let out = mailroom(
        &data,
        &["user", "add", "alice", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_clean_failure(&out, 1, "adding an existing user");

    let out = mailroom(&data, &["user", "del", "nosuchuser"], None);
    assert_clean_failure(&out, 1, "deleting a missing user");

    let out = mailroom(
        &data,
        &["user", "passwd", "nosuchuser", "--password-stdin"],
        Some("x\n"),
    );
    assert_clean_failure(&out, 1, "passwd of a missing user");

    // Commands other than serve and user add do not create the data dir.
    let missing = dir.path().join("no-such-data-dir");
    let out = mailroom(&missing, &["user", "list"], None);
    assert_clean_failure(&out, 1, "user list without a data dir");
    assert!(!missing.exists(), "user list created the data dir");
}

#[test]
fn usage_errors_exit_2() {
    let dir = TestDir::new("cli-usage");
    let data = dir.data_dir();
    let out = mailroom(&data, &["user", "frobnicate"], None);
    assert_clean_failure(&out, 2, "unknown subcommand");
    let out = mailroom(&data, &["serve", "--no-such-flag"], None);
    assert_clean_failure(&out, 2, "unknown flag");
}

#[test]
fn password_without_stdin_or_terminal_is_exit_2() {
    let dir = TestDir::new("cli-password");
    let data = dir.data_dir();
    // stdin is /dev/null (no terminal) and MAILROOM_PASSWORD is unset.
    let mut cmd = std::process::Command::new(common::bin());
    cmd.arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "carol"])
        .env_remove("MAILROOM_PASSWORD");
    let out = common::run_with_timeout(cmd, None, std::time::Duration::from_secs(60));
    assert_clean_failure(&out, 2, "user add with no password source");

    // MAILROOM_PASSWORD is the second source.
    let mut cmd = std::process::Command::new(common::bin());
    cmd.arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "carol"])
        .env("MAILROOM_PASSWORD", PASSWORD);
    let out = common::run_with_timeout(cmd, None, std::time::Duration::from_secs(60));
    assert!(
        out.status.success(),
        "user add with MAILROOM_PASSWORD: {}",
        stderr(&out)
    );
}

#[test]
fn users_added_and_deleted_while_serving() {
    let env = Env::start("cli-live");
    let data = env.dir.data_dir();
    add_user(&data, "carol");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    let message = simple_message("for-carol", "added while the server runs");
    smtp.send_mail("sender@remote.test", &["carol@example.test"], &message)
        .expect(250, "", "mail to a user added while serving");
    smtp.quit();
    assert_eq!(env.messages("carol").len(), 1);

    let out = mailroom(&data, &["user", "del", "bob"], None);
    assert!(out.status.success(), "user del bob: {}", stderr(&out));
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    smtp.ok("MAIL FROM:<sender@remote.test>", 250);
    smtp.cmd("RCPT TO:<bob@example.test>").expect(
        550,
        "5.1.1",
        "RCPT to a user deleted while serving",
    );
    smtp.quit();
}
