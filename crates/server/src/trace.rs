//! Trace headers (RFC 5321 §4.4): `Received:` added by every SMTP server
//! that accepts a message, and `Return-Path:` added at final delivery.

use std::net::IpAddr;

use mailroom_core::{Address, Domain};

/// What the `Received:` header records about one accepted message.
pub(crate) struct ReceivedInfo<'a> {
    pub helo: &'a str,
    pub peer: IpAddr,
    pub hostname: &'a str,
    /// RFC 3848 protocol name: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA (UTF8 variants per RFC 6531).
    pub protocol: &'a str,
    pub id: &'a str,
    /// Named in a `for` clause only when there is exactly one recipient
    /// (RFC 5321 §7.2: naming all of them would disclose Bcc recipients).
    pub single_recipient: Option<&'a Address>,
    pub date: &'a str,
}

/// `Return-Path: <sender>` (RFC 5321 §4.4; `<>` for the null sender).
pub(crate) fn return_path(sender: Option<&Address>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"Return-Path: <");
    if let Some(sender) = sender {
        out.extend_from_slice(sender.to_string().as_bytes());
    }
    out.extend_from_slice(b">\r\n");
}

/// A folded `Received:` header, every line shorter than 78 octets where the
/// names allow, ending in CRLF.
pub(crate) fn received(info: &ReceivedInfo<'_>, out: &mut Vec<u8>) {
    let ip = match info.peer {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPv6:{v6}"),
    };
    // RFC 5321 §4.4: From-domain is the EHLO name, a Domain or an address
    // literal. A name that is neither (the client's to choose) goes in a
    // comment instead, with only characters that cannot break the syntax.
    let (from, helo_comment) = if Domain::parse(info.helo, false).is_ok() {
        (info.helo.to_string(), String::new())
    } else {
        let shown: String = info
            .helo
            .chars()
            .filter(|c| c.is_ascii_graphic() && !"()\\;".contains(*c))
            .take(255)
            .collect();
        let comment = if shown.is_empty() {
            String::new()
        } else {
            format!("\r\n\t(helo={shown})")
        };
        ("unknown".to_string(), comment)
    };
    let mut header = format!(
        "Received: from {from} ([{ip}]){helo_comment}\r\n\tby {} (mailroom) with {} id {}",
        info.hostname, info.protocol, info.id
    );
    if let Some(rcpt) = info.single_recipient {
        header.push_str(&format!("\r\n\tfor <{rcpt}>"));
    }
    header.push_str(&format!(";\r\n\t{}\r\n", info.date));
    out.extend_from_slice(header.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_header_shape() {
        let rcpt = Address::parse("alice@example.test", false).ok();
        let info = ReceivedInfo {
            helo: "client.example (evil)\r\nX-Injected: yes",
            peer: [192, 0, 2, 1].into(),
            hostname: "mx.example.test",
            protocol: "ESMTP",
            id: "ABC123",
            single_recipient: rcpt.as_ref(),
            date: "Fri, 27 Nov 2026 15:48:59 +0000",
        };
        let mut out = Vec::new();
        received(&info, &mut out);
        let text = String::from_utf8(out).unwrap_or_default();
        assert_eq!(
            text,
            "Received: from unknown ([192.0.2.1])\r\n\t(helo=client.exampleevilX-Injected:yes)\r\n\tby mx.example.test (mailroom) with ESMTP id ABC123\r\n\tfor <alice@example.test>;\r\n\tFri, 27 Nov 2026 15:48:59 +0000\r\n"
        );
        // A name or an address literal is the From-domain itself; anything
        // else is only commented.
        for (helo, from) in [
            (
                "client.example",
                "from client.example ([192.0.2.1])\r\n\tby",
            ),
            ("[192.0.2.7]", "from [192.0.2.7] ([192.0.2.1])\r\n\tby"),
            (
                "[IPv6:2001:db8::1]",
                "from [IPv6:2001:db8::1] ([192.0.2.1])\r\n\tby",
            ),
            (
                "<script>",
                "from unknown ([192.0.2.1])\r\n\t(helo=<script>)\r\n\tby",
            ),
            (
                "[1.2.3.4",
                "from unknown ([192.0.2.1])\r\n\t(helo=[1.2.3.4)\r\n\tby",
            ),
            (
                "bad..name",
                "from unknown ([192.0.2.1])\r\n\t(helo=bad..name)\r\n\tby",
            ),
            ("", "from unknown ([192.0.2.1])\r\n\tby"),
        ] {
            let mut out = Vec::new();
            received(&ReceivedInfo { helo, ..info }, &mut out);
            let text = String::from_utf8(out).unwrap_or_default();
            assert!(
                text.starts_with(&format!("Received: {from}")),
                "{helo:?}: {text}"
            );
        }
        let mut rp = Vec::new();
        return_path(None, &mut rp);
        assert_eq!(rp, b"Return-Path: <>\r\n");
    }
}
