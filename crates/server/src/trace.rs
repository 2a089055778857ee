//! Trace headers (RFC 5321 §4.4): `Received:` added by every SMTP server
//! that accepts a message, and `Return-Path:` added at final delivery.

use std::net::IpAddr;

use mailroom_core::Address;

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
    // The HELO name is client-controlled: keep only characters that cannot
    // break the header's syntax.
    let helo: String = info
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic() && !"()\\;".contains(*c))
        .take(255)
        .collect();
    let helo = if helo.is_empty() {
        "unknown".to_string()
    } else {
        helo
    };
    let mut header = format!(
        "Received: from {helo} ([{ip}])\r\n\tby {} (mailroom) with {} id {}",
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
            "Received: from client.exampleevilX-Injected:yes ([192.0.2.1])\r\n\tby mx.example.test (mailroom) with ESMTP id ABC123\r\n\tfor <alice@example.test>;\r\n\tFri, 27 Nov 2026 15:48:59 +0000\r\n"
        );
        let mut rp = Vec::new();
        return_path(None, &mut rp);
        assert_eq!(rp, b"Return-Path: <>\r\n");
    }
}
