//! Just enough RFC 5322 header handling for `sendmail -t`: find the
//! recipients in To/Cc/Bcc, drop Bcc, and see which of From/Date/Message-ID
//! are present. Headers are read from the header section only.

/// The unfolded header fields of `message` as (name, value) pairs.
fn fields(message: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if text.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(text.trim());
            }
            continue;
        }
        if let Some((name, value)) = text.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    out
}

/// Whether From, Date and Message-ID are present.
pub(crate) fn present(message: &[u8]) -> (bool, bool, bool) {
    let f = fields(message);
    let has = |n: &str| f.iter().any(|(name, _)| name == n);
    (has("from"), has("date"), has("message-id"))
}

/// Addresses in the To, Cc and Bcc fields (RFC 5322 §3.6.3).
pub(crate) fn recipients_from_headers(message: &[u8]) -> Vec<String> {
    fields(message)
        .into_iter()
        .filter(|(name, _)| matches!(name.as_str(), "to" | "cc" | "bcc"))
        .flat_map(|(_, value)| split_addresses(&value))
        .collect()
}

/// The bare addresses of an RFC 5322 address list: `"Joe" <j@x.org>, k@y.org`
/// gives `j@x.org` and `k@y.org`. Group names and comments are dropped.
pub(crate) fn split_addresses(list: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut current, mut quoted, mut angle, mut comment) = (String::new(), false, false, 0u32);
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '"' if comment == 0 => {
                quoted = !quoted;
                current.push(c);
            }
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => comment -= 1,
            _ if comment > 0 => {}
            '<' if !quoted => {
                angle = true;
                current.push(c);
            }
            '>' if !quoted => {
                angle = false;
                current.push(c);
            }
            // A group's display name ends with ':' and its list with ';'.
            ':' if !quoted && !angle => current.clear(),
            ',' | ';' if !quoted && !angle => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    items
        .into_iter()
        .filter_map(|item| {
            let item = item.trim();
            let address = match (item.rfind('<'), item.rfind('>')) {
                (Some(open), Some(close)) if open < close => &item[open + 1..close],
                _ => item,
            };
            let address = address.trim();
            (!address.is_empty()).then(|| address.to_string())
        })
        .collect()
}

/// `message` without any `name:` field (and its continuation lines) in the
/// header section.
pub(crate) fn remove_header(message: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut in_header = true;
    let mut skipping = false;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if in_header {
            let content = line.strip_suffix(b"\r\n").unwrap_or(line);
            if content.is_empty() {
                in_header = false;
            } else if content.starts_with(b" ") || content.starts_with(b"\t") {
                if skipping {
                    continue;
                }
            } else {
                let field = content.split(|&b| b == b':').next().unwrap_or_default();
                skipping = field.trim_ascii().eq_ignore_ascii_case(name.as_bytes());
                if skipping {
                    continue;
                }
            }
        }
        out.extend_from_slice(line);
    }
    out
}

/// A display name as an RFC 5322 quoted string when it needs quoting.
pub(crate) fn quote_display_name(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ') {
        return name.to_string();
    }
    let escaped: String = name
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| {
            if c == '"' || c == '\\' {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect();
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists() {
        assert_eq!(
            split_addresses(
                "\"Doe, John\" <john@x.org>, jane@y.org (Jane), undisclosed-recipients:;"
            ),
            vec!["john@x.org", "jane@y.org"]
        );
        assert_eq!(
            split_addresses("team: a@x.org, b@x.org;"),
            vec!["a@x.org", "b@x.org"]
        );
    }

    #[test]
    fn recipients_and_bcc_removal() {
        let msg = b"To: a@x.org,\r\n b@x.org\r\nBcc: secret@x.org,\r\n  more@x.org\r\nSubject: s\r\n\r\nBcc: body@x.org\r\n";
        assert_eq!(
            recipients_from_headers(msg),
            vec!["a@x.org", "b@x.org", "secret@x.org", "more@x.org"]
        );
        let stripped = remove_header(msg, "bcc");
        assert_eq!(
            stripped,
            b"To: a@x.org,\r\n b@x.org\r\nSubject: s\r\n\r\nBcc: body@x.org\r\n".to_vec()
        );
        assert_eq!(present(msg), (false, false, false));
    }
}
