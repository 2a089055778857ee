//! SMTP paths (RFC 5321 §4.1.2): `Path = "<" [ A-d-l ":" ] Mailbox ">"`.

/// Splits `<inside>rest` into `inside` and `rest`. The closing `>` is the
/// first one outside a quoted string (a quoted local part may hold `>`).
/// `rest` is empty or starts with a space; anything else is a syntax error.
pub(super) fn split(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('<')?;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                let inside = body.get(..i)?;
                let rest = body.get(i + 1..)?;
                if !rest.is_empty() && !rest.starts_with(' ') {
                    return None;
                }
                // RFC 5321 §4.5.3.1.3: a path is at most 256 octets,
                // including the angle brackets.
                if inside.len() + 2 > MAX_PATH {
                    return None;
                }
                return Some((inside, rest));
            }
            _ => {}
        }
    }
    None
}

/// Removes an RFC 5321 §4.1.1.3 / Appendix C source route (`@a,@b:`) from
/// the inside of a path. Servers "SHOULD ignore" it (RFC 5321 §3.3); we
/// check its shape and drop it.
pub(super) fn strip_source_route(inside: &str) -> Option<&str> {
    if !inside.starts_with('@') {
        return Some(inside);
    }
    // The route ends at the first ':' outside an address literal's brackets
    // (`@[IPv6:::1]:user@x`).
    let mut depth = 0usize;
    let colon = inside.char_indices().find_map(|(i, c)| {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => return Some(i),
            _ => {}
        }
        None
    })?;
    let (route, mailbox) = (inside.get(..colon)?, inside.get(colon + 1..)?);
    let valid_route = route
        .split(',')
        .all(|hop| hop.len() > 1 && hop.starts_with('@'));
    (valid_route && !mailbox.is_empty()).then_some(mailbox)
}

const MAX_PATH: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_table() {
        let table = [
            ("<a@b>", Some(("a@b", ""))),
            ("<>", Some(("", ""))),
            ("<a@b> SIZE=1", Some(("a@b", " SIZE=1"))),
            ("<\"x>y\"@b>", Some(("\"x>y\"@b", ""))),
            ("<\"x\\\"> y\"@b> Z", Some(("\"x\\\"> y\"@b", " Z"))),
            ("a@b", None),
            ("<a@b", None),
            ("<a@b>x", None),
            ("<\"a@b>", None),
        ];
        for (input, want) in table {
            assert_eq!(split(input), want, "{input:?}");
        }
        let long = format!("<{}@x.org>", "a".repeat(250));
        assert_eq!(split(&long), None);
    }

    #[test]
    fn source_routes() {
        let table = [
            ("a@b", Some("a@b")),
            ("@relay.example:a@b", Some("a@b")),
            ("@r1.example,@r2.example:a@b", Some("a@b")),
            ("@[IPv6:::1]:a@b", Some("a@b")),
            ("@r1.example", None),
            ("@r1.example:", None),
            ("@:a@b", None),
            ("@r1,r2:a@b", None),
        ];
        for (input, want) in table {
            assert_eq!(strip_source_route(input), want, "{input:?}");
        }
    }
}
