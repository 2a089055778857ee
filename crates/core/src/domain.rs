//! Domains as they appear in SMTP paths (RFC 5321 §4.1.2): a dot-separated
//! host name, or an address literal in brackets.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A mail domain, normalised to lower case (RFC 5321 §2.4: domain names are
/// case-insensitive). Address literals keep their bracketed form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

/// Why a string is not a domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Empty string where a domain was required.
    #[error("empty domain")]
    Empty,
    /// A label is empty, too long, or has a character outside letters,
    /// digits and hyphen, or starts/ends with a hyphen.
    #[error("invalid domain name")]
    BadName,
    /// The bracketed form does not hold an IPv4, `IPv6:` or general literal.
    #[error("invalid address literal")]
    BadLiteral,
}

impl Domain {
    /// Parses an RFC 5321 `Domain / address-literal`. With `utf8` set
    /// (RFC 6531 SMTPUTF8), labels may also hold non-ASCII characters.
    pub fn parse(s: &str, utf8: bool) -> Result<Self, DomainError> {
        if s.is_empty() {
            return Err(DomainError::Empty);
        }
        if s.starts_with('[') {
            return parse_literal(s).map(Domain);
        }
        // The limits hold for the text as sent and as stored: lower case
        // can take more octets in UTF-8 ('Ⱥ' is 2, 'ⱥ' 3), and a stored
        // domain must parse again (checking only the lower case would let
        // ASCII mode accept the Kelvin sign, which folds to 'k').
        let lower = s.to_lowercase();
        for form in [s, lower.as_str()] {
            // RFC 5321 §4.5.3.1.2: a domain is at most 255 octets.
            if form.len() > 255 {
                return Err(DomainError::BadName);
            }
            for label in form.split('.') {
                if !valid_label(label, utf8) {
                    return Err(DomainError::BadName);
                }
            }
        }
        Ok(Domain(lower))
    }

    /// The domain as a string (lower case for names).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when this is a bracketed address literal.
    pub fn is_literal(&self) -> bool {
        self.0.starts_with('[')
    }

    /// The IP address of an address literal (`[192.0.2.1]`, `[IPv6:::1]`).
    pub fn literal_ip(&self) -> Option<IpAddr> {
        let inner = self.0.strip_prefix('[')?.strip_suffix(']')?;
        match inner.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("ipv6:") => {
                inner[5..].parse::<Ipv6Addr>().ok().map(IpAddr::V6)
            }
            _ => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_label(label: &str, utf8: bool) -> bool {
    // RFC 1035 §2.3.4: labels are 63 octets or less.
    if label.is_empty() || label.len() > 63 {
        return false;
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || (utf8 && !c.is_ascii());
    label.chars().all(ok_char) && !label.starts_with('-') && !label.ends_with('-')
}

fn parse_literal(s: &str) -> Result<String, DomainError> {
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or(DomainError::BadLiteral)?;
    if let Some(v6) = inner.get(..5).filter(|p| p.eq_ignore_ascii_case("ipv6:")) {
        let _ = v6;
        inner[5..]
            .parse::<Ipv6Addr>()
            .map_err(|_| DomainError::BadLiteral)?;
        return Ok(format!("[IPv6:{}]", &inner[5..].to_lowercase()));
    }
    if inner.parse::<Ipv4Addr>().is_ok() {
        return Ok(s.to_string());
    }
    // RFC 5321 §4.1.3 General-address-literal: Standardized-tag ":" 1*dcontent.
    match inner.split_once(':') {
        Some((tag, content))
            if !tag.is_empty()
                && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !content.is_empty()
                && content
                    .bytes()
                    .all(|b| (33..=90).contains(&b) || (94..=126).contains(&b)) =>
        {
            Ok(s.to_string())
        }
        _ => Err(DomainError::BadLiteral),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `address` fuzz target (crash input, base64:
    /// `+8i6yLo5////////////////////////`): a 62-octet label of 'Ⱥ's and
    /// U+FFFDs was accepted, but its stored lower case ('ⱥ' takes one octet
    /// more) was 64 octets, over RFC 1035's 63, so the domain we stored no
    /// longer parsed.
    #[test]
    fn lower_case_that_outgrows_a_label_is_refused() {
        let label = format!("\u{FFFD}\u{23A}\u{23A}9{}", "\u{FFFD}".repeat(18));
        assert_eq!(label.len(), 62);
        assert_eq!(label.to_lowercase().len(), 64);
        assert_eq!(Domain::parse(&label, true), Err(DomainError::BadName));
        let short = "\u{23A}".repeat(21);
        let domain = Domain::parse(&short, true).map(|d| d.to_string());
        assert_eq!(domain, Ok("\u{2C65}".repeat(21)));
        assert_eq!(
            Domain::parse(&"\u{2C65}".repeat(21), true).map(|d| d.to_string()),
            domain
        );
        // ASCII mode still refuses what only folds to ASCII (Kelvin sign).
        assert_eq!(
            Domain::parse("\u{212A}.example", false),
            Err(DomainError::BadName)
        );
    }

    #[test]
    fn names_and_literals() {
        let ok = [
            ("Example.COM", "example.com"),
            ("a-b.c", "a-b.c"),
            ("[192.0.2.1]", "[192.0.2.1]"),
            ("[IPv6:2001:DB8::1]", "[IPv6:2001:db8::1]"),
            ("localhost", "localhost"),
        ];
        for (input, want) in ok {
            assert_eq!(
                Domain::parse(input, false).map(|d| d.0),
                Ok(want.to_string()),
                "{input}"
            );
        }
        let bad = [
            "",
            "a..b",
            "-a.b",
            "a-.b",
            "a_b.c",
            "[1.2.3]",
            "[IPv6:zz]",
            "exa mple.com",
            "ü.de",
        ];
        for input in bad {
            assert!(Domain::parse(input, false).is_err(), "{input}");
        }
        assert!(Domain::parse("ü.de", true).is_ok());
        assert_eq!(
            Domain::parse("[IPv6:::1]", false)
                .ok()
                .and_then(|d| d.literal_ip()),
            Some("::1".parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
        );
    }
}
