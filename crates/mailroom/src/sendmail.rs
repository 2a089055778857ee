//! `mailroom sendmail`: sendmail(8)-compatible injection. The message comes
//! on standard input and is queued durably in the data dir's queue; the
//! running server's MTA delivers it (local recipients into their maildrops,
//! remote ones to their mail exchangers). Exit 0 only once queued; otherwise
//! the sysexits(3) code sendmail callers expect.
//!
//! Arguments are parsed by hand: sendmail's `-oi`, `-odb`, `-fADDR` forms
//! do not fit a getopt-style parser.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use mailroom_core::Address;
use mailroom_store::{IncomingMessage, QueueEntry, QueuedRecipient};

use crate::config;
use crate::headers;

/// sysexits(3) codes.
const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_NOUSER: u8 = 67;
const EX_TEMPFAIL: u8 = 75;

/// What the command line asked for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    from_headers: bool,
    ignore_dots: bool,
    sender: Option<String>,
    full_name: Option<String>,
    recipients: Vec<String>,
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
}

/// Runs sendmail with `args` (everything after `sendmail`); `config` and
/// `data_dir` are mailroom's global flags when given before `sendmail`.
pub(crate) fn run(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    args: &[String],
) -> ExitCode {
    let options = match parse_args(args) {
        Ok(mut options) => {
            options.config = options.config.or(config);
            options.data_dir = options.data_dir.or(data_dir);
            options.store = options.store.or(store);
            options
        }
        Err(message) => {
            eprintln!("sendmail: {message}");
            return ExitCode::from(EX_USAGE);
        }
    };
    match inject(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("sendmail: {message}");
            ExitCode::from(code)
        }
    }
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut iter = args.iter();
    let mut only_recipients = false;
    while let Some(arg) = iter.next() {
        if only_recipients || !arg.starts_with('-') || arg == "-" {
            options.recipients.push(arg.clone());
            continue;
        }
        let mut value = |flag: &str| -> Result<String, String> {
            match arg.strip_prefix(flag).filter(|rest| !rest.is_empty()) {
                Some(rest) => Ok(rest.to_string()),
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        match arg.as_str() {
            "--" => only_recipients = true,
            "-t" => options.from_headers = true,
            "-i" | "-oi" => options.ignore_dots = true,
            // Delivery and error modes: accepted and ignored (we always queue).
            a if a.starts_with("-od") || a.starts_with("-oe") || a == "-bm" || a == "-v" => {}
            "--config" => options.config = Some(PathBuf::from(value("--config")?)),
            "--data-dir" => options.data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "--store" => options.store = Some(value("--store")?),
            a if a.starts_with("-f") => options.sender = Some(value("-f")?),
            a if a.starts_with("-r") => options.sender = Some(value("-r")?),
            a if a.starts_with("-F") => options.full_name = Some(value("-F")?),
            a if a.starts_with("-o")
                || a.starts_with("-B")
                || a.starts_with("-N")
                || a.starts_with("-R") =>
            {
                // Other sendmail options (-oX, -B body type, -N dsn, -R ret):
                // harmless to ignore for injection.
                if matches!(a, "-B" | "-N" | "-R") {
                    let _ = iter.next();
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if options.recipients.is_empty() && !options.from_headers {
        return Err("no recipients given (name them, or use -t)".into());
    }
    Ok(options)
}

fn inject(options: Options) -> Result<(), (u8, String)> {
    let raw = load_config(&options).map_err(|e| (EX_TEMPFAIL, e))?;
    let hostname = raw
        .hostname
        .clone()
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase();
    let cli_dir = options.data_dir.clone();
    let data_dir = match cli_dir {
        Some(dir) => dir,
        None => config::data_dir_from(None, &raw),
    };
    let postgres = options
        .store
        .as_deref()
        .or(raw.store.as_deref())
        .is_some_and(crate::stores::is_postgres);
    if !postgres && !data_dir.is_dir() {
        return Err((
            EX_TEMPFAIL,
            format!("data dir {} does not exist", data_dir.display()),
        ));
    }
    crate::privileges::become_run_as(raw.run_as.as_deref(), &data_dir)
        .map_err(|e| (EX_TEMPFAIL, format!("{e:#}")))?;

    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| (EX_TEMPFAIL, format!("reading the message: {e}")))?;
    let mut message = to_crlf(&input, !options.ignore_dots);
    if message.is_empty() {
        return Err((EX_DATAERR, "empty message".into()));
    }

    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into());
    let sender = options
        .sender
        .clone()
        .unwrap_or_else(|| format!("{user}@{hostname}"));
    let sender = if sender.is_empty() || sender == "<>" {
        None
    } else {
        let bare = sender.trim_start_matches('<').trim_end_matches('>');
        Some(
            Address::parse(bare, true)
                .map_err(|e| (EX_DATAERR, format!("sender {sender:?}: {e}")))?,
        )
    };

    let mut recipients = Vec::new();
    for r in &options.recipients {
        for part in headers::split_addresses(r) {
            recipients.push(part);
        }
    }
    if options.from_headers {
        recipients.extend(headers::recipients_from_headers(&message));
        message = headers::remove_header(&message, "bcc");
    }
    let mut parsed = Vec::new();
    for r in recipients {
        let address = if r.contains('@') {
            r.clone()
        } else {
            format!("{r}@{hostname}")
        };
        match Address::parse(&address, true) {
            Ok(a) => parsed.push(a),
            Err(e) => return Err((EX_NOUSER, format!("recipient {r:?}: {e}"))),
        }
    }
    parsed.sort();
    parsed.dedup();
    if parsed.is_empty() {
        return Err((EX_USAGE, "no recipients found".into()));
    }

    // RFC 6409 §8: a submission agent adds what the user agent left out.
    let id = mailroom_server::ids::new_id();
    let date = mailroom_server::time::rfc5322_now();
    let mut prefix = Vec::new();
    let (has_from, has_date, has_id) = headers::present(&message);
    if !has_from {
        let from = match (&options.full_name, &sender) {
            (Some(name), Some(a)) => {
                format!("From: {} <{a}>\r\n", headers::quote_display_name(name))
            }
            (None, Some(a)) => format!("From: <{a}>\r\n"),
            (_, None) => format!("From: <MAILER-DAEMON@{hostname}>\r\n"),
        };
        prefix.extend_from_slice(from.as_bytes());
    }
    if !has_date {
        prefix.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    if !has_id {
        prefix.extend_from_slice(format!("Message-ID: <{id}@{hostname}>\r\n").as_bytes());
    }
    let received =
        format!("Received: by {hostname} (mailroom sendmail, uid {user}) id {id};\r\n\t{date}\r\n");
    let mut full_prefix = received.into_bytes();
    full_prefix.extend_from_slice(&prefix);

    let entry = queue_entry(&id, sender.as_ref(), &parsed, &full_prefix, &message);
    let url = options
        .store
        .clone()
        .or(raw.store.clone())
        .unwrap_or_else(|| "maildir:".into());
    let incoming = IncomingMessage {
        prefix: full_prefix,
        body: Arc::new(message),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (EX_TEMPFAIL, format!("runtime: {e}")))?;
    runtime
        .block_on(async {
            let stores = crate::stores::open(&url, &data_dir, &hostname).await?;
            stores.queue.enqueue(&entry, &incoming).await?;
            anyhow::Ok(())
        })
        .map_err(|e| (EX_TEMPFAIL, format!("queueing the message: {e:#}")))?;
    Ok(())
}

fn load_config(options: &Options) -> Result<config::RawConfig, String> {
    match &options.config {
        Some(path) => config::read_raw(path).map_err(|e| format!("{e:#}")),
        None => Ok(config::RawConfig::default()),
    }
}

/// Queues `message` (CRLF lines, headers complete) from `sender` to
/// `recipients` in the data dir's queue, durably. Returns the queue id.
pub(crate) fn enqueue(
    store_url: &str,
    data_dir: &std::path::Path,
    sender: Option<&str>,
    recipients: &[String],
    message: Vec<u8>,
) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let sender = sender
        .map(|s| Address::parse(s, true).with_context(|| format!("sender {s:?}")))
        .transpose()?;
    let mut parsed = Vec::new();
    for r in recipients {
        parsed.push(Address::parse(r, true).with_context(|| format!("recipient {r:?}"))?);
    }
    parsed.sort();
    parsed.dedup();
    let id = mailroom_server::ids::new_id();
    let date = mailroom_server::time::rfc5322_now();
    let prefix = format!("Received: by localhost (mailroom) id {id};\r\n\t{date}\r\n").into_bytes();
    let entry = queue_entry(&id, sender.as_ref(), &parsed, &prefix, &message);
    let incoming = IncomingMessage {
        prefix,
        body: Arc::new(message),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(async {
            let stores = crate::stores::open(store_url, data_dir, "localhost").await?;
            stores.queue.enqueue(&entry, &incoming).await?;
            anyhow::Ok(())
        })
        .context("queueing the message")?;
    Ok(id)
}

/// A new queue entry for `message`, every recipient due now.
fn queue_entry(
    id: &str,
    sender: Option<&Address>,
    recipients: &[Address],
    prefix: &[u8],
    message: &[u8],
) -> QueueEntry {
    let now = mailroom_server::time::unix_now();
    QueueEntry {
        id: id.to_string(),
        sender: sender.map(|a| a.to_string()),
        created: now,
        envid: None,
        ret: None,
        body_8bit: message.iter().any(|b| *b >= 0x80),
        smtputf8: recipients.iter().any(Address::is_utf8) || sender.is_some_and(Address::is_utf8),
        size: (prefix.len() + message.len()) as u64,
        held: false,
        recipients: recipients
            .iter()
            .map(|a| QueuedRecipient::pending(a.to_string(), now))
            .collect(),
    }
}

/// Converts standard input to CRLF lines. Unless `-i`, a line with a single
/// "." ends the message, as sendmail does.
fn to_crlf(input: &[u8], dot_ends: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 40);
    for line in input.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if dot_ends && content == b"." {
            break;
        }
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_sendmail_arguments() {
        let o = parse_args(&args(&[
            "-oi", "-f", "a@b.c", "-odq", "-Fjoe", "x@y.z", "w@v.u",
        ]))
        .unwrap_or_default();
        assert!(o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some("a@b.c"));
        assert_eq!(o.full_name.as_deref(), Some("joe"));
        assert_eq!(o.recipients, vec!["x@y.z", "w@v.u"]);
        let o = parse_args(&args(&["-t", "-fme@x.org"])).unwrap_or_default();
        assert!(o.from_headers && o.sender.as_deref() == Some("me@x.org"));
        assert!(parse_args(&args(&["-i"])).is_err(), "no recipients");
        assert!(parse_args(&args(&["-Q", "x@y"])).is_err(), "unknown option");
    }

    #[test]
    fn crlf_and_dot_handling() {
        assert_eq!(to_crlf(b"a\nb\r\n.\nc\n", true), b"a\r\nb\r\n");
        assert_eq!(to_crlf(b"a\n.\nc", false), b"a\r\n.\r\nc\r\n");
    }
}
