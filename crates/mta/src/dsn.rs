//! Delivery status notifications (RFC 3464) as MIME `multipart/report`
//! messages (RFC 6522, was RFC 3462): bounces, delay notices and success
//! notices, sent by the MTA with the null reverse-path.
//!
//! [`build`] is pure: every value that varies (dates, ids, the boundary's
//! seed) is passed in, so the output is byte-for-byte testable.
//!
//! The report has three parts (RFC 6522 §3):
//!
//! 1. `text/plain`: what happened, for a human, naming each recipient and
//!    the remote server's reply;
//! 2. `message/delivery-status` (RFC 3464 §2): per-message fields, then
//!    one group of per-recipient fields each;
//! 3. the original: `message/rfc822` (RFC 3461 §4.3 `RET=FULL` or no RET)
//!    or `text/rfc822-headers` (`RET=HDRS`, a big message, or any notice
//!    that is not a failure).

use std::fmt::Write as _;

use crate::outcome::Status;

/// The notice being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<'a> {
    /// Failure, delay or success.
    pub kind: ReportKind,
    /// This host's name: `Reporting-MTA: dns; …` and `MAILER-DAEMON@…`.
    pub reporting_mta: &'a str,
    /// The envelope sender of the original, who gets the notice.
    pub to: &'a str,
    /// RFC 3461 ENVID of the original (`Original-Envelope-Id`).
    pub envid: Option<&'a str>,
    /// When the original was accepted, unix seconds (`Arrival-Date`).
    pub arrival_date: i64,
    /// Now, unix seconds (`Date`, `Last-Attempt-Date`).
    pub date: i64,
    /// The notice's `Message-ID`, without angle brackets.
    pub message_id: &'a str,
    /// One entry per recipient reported on.
    pub recipients: Vec<RecipientReport>,
    /// The original message as queued (CRLF line ends).
    pub original: &'a [u8],
    /// How much of the original to return.
    pub content: ReturnContent,
}

/// What kind of notice, which sets its subject and wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Some recipients failed for good (a bounce).
    Failure,
    /// Some recipients are still being retried (RFC 3461 `NOTIFY=DELAY`).
    Delay,
    /// Some recipients were delivered or relayed (`NOTIFY=SUCCESS`).
    Success,
}

/// RFC 3464 §2.3.3 `Action` values the MTA reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The message could not be delivered and will not be retried.
    Failed,
    /// Delivery is still being attempted.
    Delayed,
    /// Delivered into the recipient's maildrop.
    Delivered,
    /// Handed to a next hop that will not send DSNs itself (it lacks the
    /// DSN extension, RFC 3461 §4.1).
    Relayed,
}

impl Action {
    /// The field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// The per-recipient part of a report (RFC 3464 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The recipient address as the MTA tried it (`Final-Recipient:
    /// rfc822;…`).
    pub final_recipient: String,
    /// RFC 3461 ORCPT as queued, `addr-type;address`
    /// (`Original-Recipient`).
    pub original_recipient: Option<String>,
    /// What happened.
    pub action: Action,
    /// The RFC 3463 status.
    pub status: Status,
    /// The host that answered (`Remote-MTA: dns; …`).
    pub remote_mta: Option<String>,
    /// The remote SMTP reply, one line (`Diagnostic-Code: smtp; …`).
    pub diagnostic: Option<String>,
    /// One line for the human-readable part, when there is no reply to
    /// quote (a DNS failure, an expiry).
    pub text: String,
    /// For `delayed`: until when the MTA keeps trying, unix seconds
    /// (`Will-Retry-Until`).
    pub will_retry_until: Option<i64>,
}

/// How much of the original goes back (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnContent {
    /// The whole message, as `message/rfc822`.
    Full,
    /// Its header only, as `text/rfc822-headers`.
    Headers,
}

impl ReturnContent {
    /// The content a notice returns: the whole original only for a failure
    /// with `RET=FULL` or no RET, and only up to [`MAX_RETURNED_SIZE`];
    /// headers otherwise.
    pub fn choose(kind: ReportKind, ret: Option<&str>, size: usize) -> ReturnContent {
        let hdrs = ret.is_some_and(|r| r.eq_ignore_ascii_case("HDRS"));
        if kind == ReportKind::Failure && !hdrs && size <= MAX_RETURNED_SIZE {
            ReturnContent::Full
        } else {
            ReturnContent::Headers
        }
    }
}

/// Originals larger than this come back as headers only: the sender has
/// the message, and a big bounce can fail to deliver in turn. 1 MiB.
pub const MAX_RETURNED_SIZE: usize = 1024 * 1024;

/// Builds the notice: a complete RFC 5322 message with CRLF line ends, to
/// be queued with the null reverse-path.
pub fn build(report: &Report<'_>) -> Vec<u8> {
    let returned: &[u8] = match report.content {
        ReturnContent::Full => report.original,
        ReturnContent::Headers => header_of(report.original),
    };
    let text = human_text(report);
    let status = delivery_status(report);
    let boundary = boundary(report, &[returned, text.as_bytes()]);

    let (subject, description) = match report.kind {
        ReportKind::Failure => ("Undelivered Mail Returned to Sender", "Undelivered Message"),
        ReportKind::Delay => ("Delayed Mail (still being retried)", "Delayed Message"),
        ReportKind::Success => ("Successful Mail Delivery Report", "Delivered Message"),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "Date: {date}\r\n\
         From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{id}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: {text_cte}\r\n\
         \r\n\
         {text}\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         {status}\
         \r\n\
         --{boundary}\r\n\
         Content-Description: {description}\r\n",
        date = rfc5322_date(report.date),
        host = one_line(report.reporting_mta),
        to = one_line(report.to),
        id = one_line(report.message_id),
        text_cte = if text.is_ascii() { "7bit" } else { "8bit" },
    );
    let mut out = out.into_bytes();
    let content_type = match report.content {
        ReturnContent::Full => "message/rfc822",
        ReturnContent::Headers => "text/rfc822-headers",
    };
    out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    if !returned.is_ascii() {
        // RFC 2046 §5.2.1: message/rfc822 allows only 7bit, 8bit or binary.
        out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(returned);
    if !returned.is_empty() && !returned.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The `text/plain` part.
fn human_text(report: &Report<'_>) -> String {
    let host = one_line(report.reporting_mta);
    let intro = match report.kind {
        ReportKind::Failure => {
            "I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. It's attached below.\r\n\
             \r\n\
             For further assistance, please send mail to postmaster.\r\n"
        }
        ReportKind::Delay => {
            "This is a warning only; you do not need to resend your message.\r\n\
             \r\n\
             Delivery to the following recipients has been delayed. The mail\r\n\
             system will keep trying, and tell you if it finally gives up.\r\n"
        }
        ReportKind::Success => {
            "Your message was successfully delivered to the destination(s)\r\n\
             listed below. If the message was delivered to a mailbox you will\r\n\
             receive no further notifications. Otherwise you may still receive\r\n\
             notifications of mail delivery errors from other systems.\r\n"
        }
    };
    let mut text = format!("This is the mail system at host {host}.\r\n\r\n{intro}\r\n");
    for rcpt in &report.recipients {
        let address = one_line(&rcpt.final_recipient);
        let what = match (&rcpt.remote_mta, &rcpt.diagnostic) {
            (Some(mta), Some(reply)) => {
                format!("host {} said: {}", one_line(mta), one_line(reply))
            }
            _ => one_line(&rcpt.text),
        };
        let _ = write!(text, "<{address}>: {what}\r\n");
    }
    text
}

/// The `message/delivery-status` part (RFC 3464 §2.2, §2.3): US-ASCII
/// fields only.
fn delivery_status(report: &Report<'_>) -> String {
    let mut out = format!("Reporting-MTA: dns; {}\r\n", ascii(report.reporting_mta));
    if let Some(envid) = report.envid {
        let _ = write!(out, "Original-Envelope-Id: {}\r\n", ascii(envid));
    }
    let _ = write!(
        out,
        "Arrival-Date: {}\r\n",
        rfc5322_date(report.arrival_date)
    );
    for rcpt in &report.recipients {
        out.push_str("\r\n");
        let _ = write!(
            out,
            "Final-Recipient: rfc822; {}\r\n",
            ascii(&rcpt.final_recipient)
        );
        if let Some(orcpt) = &rcpt.original_recipient {
            let (kind, address) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
            let _ = write!(
                out,
                "Original-Recipient: {}; {}\r\n",
                ascii(kind.trim()),
                ascii(address.trim())
            );
        }
        let _ = write!(out, "Action: {}\r\n", rcpt.action.as_str());
        let _ = write!(out, "Status: {}\r\n", rcpt.status);
        if let Some(mta) = &rcpt.remote_mta {
            let _ = write!(out, "Remote-MTA: dns; {}\r\n", ascii(mta));
        }
        if let Some(reply) = &rcpt.diagnostic {
            let _ = write!(out, "Diagnostic-Code: smtp; {}\r\n", ascii(reply));
        }
        let _ = write!(out, "Last-Attempt-Date: {}\r\n", rfc5322_date(report.date));
        if let Some(until) = rcpt.will_retry_until {
            let _ = write!(out, "Will-Retry-Until: {}\r\n", rfc5322_date(until));
        }
    }
    out
}

/// A boundary found in none of the parts (RFC 2046 §5.1.1).
fn boundary(report: &Report<'_>, parts: &[&[u8]]) -> String {
    // RFC 2046 §5.1.1 bcharsnospace; anything else becomes `_`.
    let base: String = format!("{}/{}", report.message_id, report.reporting_mta)
        .chars()
        .take(60)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "'()+_,-./:=?".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut candidate = base.clone();
    let mut n = 0;
    while parts
        .iter()
        .any(|part| contains(part, candidate.as_bytes()))
    {
        n += 1;
        candidate = format!("{base}.{n}");
    }
    candidate
}

/// The header section of a message, up to and including the blank line
/// (the whole message when it has no body).
fn header_of(message: &[u8]) -> &[u8] {
    if message.starts_with(b"\r\n") {
        return &message[..2];
    }
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 4],
        None => message,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A header-safe single line: CR, LF and other controls become spaces,
/// and it is cut at 900 octets (RFC 5322 §2.1.1 allows 998).
fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(&mut out, MAX_FIELD);
    out
}

/// Like [`one_line`], and non-ASCII becomes `?`: delivery-status fields
/// are US-ASCII (RFC 3464 §2.1; UTF-8 needs RFC 6533's
/// message/global-delivery-status).
fn ascii(text: &str) -> String {
    one_line(text)
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect()
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

const MAX_FIELD: usize = 900;

/// RFC 5322 §3.3 date-time in UTC: `Tue, 01 Jul 2025 12:00:00 +0000`.
pub fn rfc5322_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!(
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write as _;
    use std::process::{Command, Stdio};

    use super::*;

    const ORIGINAL: &[u8] = b"Received: from client.example by mx.example\r\n\
From: Alice <alice@example.org>\r\n\
To: bob@example.net\r\n\
Subject: hello\r\n\
Message-ID: <1@example.org>\r\n\
\r\n\
Hi Bob.\r\n";

    fn failure_report() -> Report<'static> {
        Report {
            kind: ReportKind::Failure,
            reporting_mta: "mail.example.org",
            to: "alice@example.org",
            envid: Some("ENV42"),
            arrival_date: 1_751_371_200,
            date: 1_751_371_260,
            message_id: "B0001@mail.example.org",
            recipients: vec![RecipientReport {
                final_recipient: "bob@example.net".into(),
                original_recipient: Some("rfc822;Bob@Example.NET".into()),
                action: Action::Failed,
                status: Status::new(5, 1, 1),
                remote_mta: Some("mx.example.net".into()),
                diagnostic: Some("550 5.1.1 <bob@example.net>: user unknown".into()),
                text: "550 5.1.1 <bob@example.net>: user unknown".into(),
                will_retry_until: None,
            }],
            original: ORIGINAL,
            content: ReturnContent::Full,
        }
    }

    const GOLDEN_FAILURE: &str = "Date: Tue, 01 Jul 2025 12:01:00 +0000\r
From: Mail Delivery System <MAILER-DAEMON@mail.example.org>\r
To: <alice@example.org>\r
Subject: Undelivered Mail Returned to Sender\r
Message-ID: <B0001@mail.example.org>\r
Auto-Submitted: auto-replied\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status;\r
\tboundary=\"B0001_mail.example.org/mail.example.org\"\r
\r
This is a MIME-encapsulated message.\r
\r
--B0001_mail.example.org/mail.example.org\r
Content-Description: Notification\r
Content-Type: text/plain; charset=utf-8\r
Content-Transfer-Encoding: 7bit\r
\r
This is the mail system at host mail.example.org.\r
\r
I'm sorry to have to inform you that your message could not\r
be delivered to one or more recipients. It's attached below.\r
\r
For further assistance, please send mail to postmaster.\r
\r
<bob@example.net>: host mx.example.net said: 550 5.1.1 <bob@example.net>: user unknown\r
\r
--B0001_mail.example.org/mail.example.org\r
Content-Description: Delivery report\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mail.example.org\r
Original-Envelope-Id: ENV42\r
Arrival-Date: Tue, 01 Jul 2025 12:00:00 +0000\r
\r
Final-Recipient: rfc822; bob@example.net\r
Original-Recipient: rfc822; Bob@Example.NET\r
Action: failed\r
Status: 5.1.1\r
Remote-MTA: dns; mx.example.net\r
Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: user unknown\r
Last-Attempt-Date: Tue, 01 Jul 2025 12:01:00 +0000\r
\r
--B0001_mail.example.org/mail.example.org\r
Content-Description: Undelivered Message\r
Content-Type: message/rfc822\r
\r
Received: from client.example by mx.example\r
From: Alice <alice@example.org>\r
To: bob@example.net\r
Subject: hello\r
Message-ID: <1@example.org>\r
\r
Hi Bob.\r
\r
--B0001_mail.example.org/mail.example.org--\r
";

    #[test]
    fn golden_failure() {
        let got = String::from_utf8(build(&failure_report())).unwrap();
        assert_eq!(got, GOLDEN_FAILURE);
    }

    #[test]
    fn golden_delay_with_headers_only() {
        let report = Report {
            kind: ReportKind::Delay,
            envid: None,
            recipients: vec![RecipientReport {
                final_recipient: "carol@example.net".into(),
                original_recipient: None,
                action: Action::Delayed,
                status: Status::new(4, 4, 1),
                remote_mta: None,
                diagnostic: None,
                text: "4.4.1 connect to mx.example.net[192.0.2.1]:25: connection refused".into(),
                will_retry_until: Some(1_751_803_200),
            }],
            content: ReturnContent::Headers,
            ..failure_report()
        };
        let got = String::from_utf8(build(&report)).unwrap();
        let want = "Subject: Delayed Mail (still being retried)\r\n";
        assert!(got.contains(want), "{got}");
        assert!(got.contains(
            "<carol@example.net>: 4.4.1 connect to mx.example.net[192.0.2.1]:25: connection refused\r\n"
        ));
        assert!(got.contains(
            "\r\n\r\nFinal-Recipient: rfc822; carol@example.net\r\n\
             Action: delayed\r\n\
             Status: 4.4.1\r\n\
             Last-Attempt-Date: Tue, 01 Jul 2025 12:01:00 +0000\r\n\
             Will-Retry-Until: Sun, 06 Jul 2025 12:00:00 +0000\r\n"
        ));
        assert!(!got.contains("Original-Envelope-Id"));
        // Headers only: the body line is gone, the blank line ends them.
        assert!(got.contains(
            "Content-Type: text/rfc822-headers\r\n\r\nReceived: from client.example by mx.example\r\n"
        ));
        assert!(got.contains("Message-ID: <1@example.org>\r\n\r\n\r\n--B0001"));
        assert!(!got.contains("Hi Bob."));
    }

    #[test]
    fn return_content_table() {
        use ReportKind::*;
        let table = [
            (Failure, None, 10, ReturnContent::Full),
            (Failure, Some("FULL"), 10, ReturnContent::Full),
            (Failure, Some("hdrs"), 10, ReturnContent::Headers),
            (Failure, None, MAX_RETURNED_SIZE + 1, ReturnContent::Headers),
            (Delay, Some("FULL"), 10, ReturnContent::Headers),
            (Success, None, 10, ReturnContent::Headers),
        ];
        for (kind, ret, size, want) in table {
            assert_eq!(
                ReturnContent::choose(kind, ret, size),
                want,
                "{kind:?} {ret:?} {size}"
            );
        }
    }

    #[test]
    fn hostile_values_stay_on_one_line_and_ascii_in_the_report() {
        let report = Report {
            recipients: vec![RecipientReport {
                final_recipient: "bob@example.net\r\nBcc: victim@example".into(),
                original_recipient: None,
                action: Action::Failed,
                status: Status::new(5, 0, 0),
                remote_mta: Some("mx.example.net".into()),
                diagnostic: Some(format!("550 unknown résumé {}", "x".repeat(2000))),
                text: String::new(),
                will_retry_until: None,
            }],
            ..failure_report()
        };
        let got = String::from_utf8(build(&report)).unwrap();
        assert!(!got.contains("\r\nBcc:"));
        let status_part = got.split("message/delivery-status\r\n").nth(1).unwrap();
        let status_part = status_part.split("\r\n--").next().unwrap();
        assert!(status_part.is_ascii());
        assert!(got.lines().all(|l| l.len() <= 998));
        assert!(got.contains("Content-Transfer-Encoding: 8bit\r\n\r\nThis is the mail system"));
    }

    #[test]
    fn boundary_avoids_the_content() {
        let original = b"Subject: x\r\n\r\n--B0001_mail.example.org/mail.example.org\r\n";
        let report = Report {
            original,
            ..failure_report()
        };
        let got = String::from_utf8(build(&report)).unwrap();
        assert!(got.contains("boundary=\"B0001_mail.example.org/mail.example.org.1\""));
    }

    #[test]
    fn dates() {
        let table = [
            (0, "Thu, 01 Jan 1970 00:00:00 +0000"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (1_751_371_261, "Tue, 01 Jul 2025 12:01:01 +0000"),
            (-1, "Wed, 31 Dec 1969 23:59:59 +0000"),
            (4_102_444_800, "Fri, 01 Jan 2100 00:00:00 +0000"),
        ];
        for (unix, want) in table {
            assert_eq!(rfc5322_date(unix), want);
        }
    }

    /// A third-party parser (Python's email package) reads the bounce as
    /// RFC 6522 multipart/report with a message/delivery-status part.
    #[test]
    fn python_email_parses_the_report() {
        let script = r#"
import email, sys
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
assert msg.get_content_type() == 'multipart/report', msg.get_content_type()
assert msg.get_param('report-type') == 'delivery-status'
parts = [p.get_content_type() for p in msg.iter_parts()]
assert parts == ['text/plain', 'message/delivery-status', 'message/rfc822'], parts
status = list(msg.iter_parts())[1]
groups = status.get_payload()
assert groups[0]['Reporting-MTA'] == 'dns; mail.example.org', groups[0]['Reporting-MTA']
assert groups[1]['Action'] == 'failed'
assert groups[1]['Status'] == '5.1.1'
assert '550 5.1.1' in groups[1]['Diagnostic-Code']
inner = list(msg.iter_parts())[2].get_payload()[0]
assert inner['Subject'] == 'hello'
assert 'user unknown' in list(msg.iter_parts())[0].get_content()
print('ok')
"#;
        let Some(output) = run_python(script, &build(&failure_report())) else {
            return;
        };
        assert_eq!(output.trim(), "ok");
    }

    /// Runs `python3 -c script` with `input` on stdin; `None` (with a SKIP
    /// line) when python3 is missing, outside CI.
    fn run_python(script: &str, input: &[u8]) -> Option<String> {
        let child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(error) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "python3 is required in CI: {error}"
                );
                println!("SKIP: python3 not available: {error}");
                return None;
            }
        };
        child.stdin.take().unwrap().write_all(input).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(String::from_utf8(output.stdout).unwrap())
    }
}
