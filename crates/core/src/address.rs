//! Mailbox addresses (RFC 5321 §4.1.2 `Mailbox = Local-part "@" ( Domain / address-literal )`).

use std::fmt;

use crate::domain::{Domain, DomainError};

/// The local part of an address, kept exactly as the client wrote it
/// (unquoted). RFC 5321 §2.4 makes it case-sensitive for remote hosts; local
/// look-ups use [`LocalPart::user_key`] instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalPart(String);

/// A mailbox: local part and domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: LocalPart,
    domain: Domain,
}

/// Why a string is not a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// No `@`, or nothing before it.
    #[error("address has no local part or no domain")]
    MissingPart,
    /// The local part is neither a dot-string nor a quoted string.
    #[error("invalid local part")]
    BadLocalPart,
    /// RFC 5321 §4.5.3.1.1: the local part is at most 64 octets.
    #[error("local part too long")]
    LocalPartTooLong,
    /// The domain is invalid.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl LocalPart {
    /// Parses an RFC 5321 `Local-part` (dot-string or quoted-string) and
    /// returns it unquoted. `utf8` allows non-ASCII (RFC 6531).
    pub fn parse(s: &str, utf8: bool) -> Result<Self, AddressError> {
        if s.is_empty() {
            return Err(AddressError::MissingPart);
        }
        let value = if let Some(quoted) = s.strip_prefix('"') {
            unquote(quoted, utf8)?
        } else {
            if !is_dot_string(s, utf8) {
                return Err(AddressError::BadLocalPart);
            }
            s.to_string()
        };
        if value.len() > 64 {
            return Err(AddressError::LocalPartTooLong);
        }
        Ok(LocalPart(value))
    }

    /// Builds a local part from an already-validated user name.
    pub fn from_user(name: &str) -> Result<Self, AddressError> {
        Self::parse(name, true)
    }

    /// The unquoted local part, as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key local users and aliases are looked up by: lower case, with
    /// any `+tag` subaddress removed (`Alice+lists` → `alice`).
    pub fn user_key(&self) -> String {
        let base = match self.0.split_once('+') {
            Some((base, _)) if !base.is_empty() => base,
            _ => &self.0,
        };
        base.to_lowercase()
    }
}

impl fmt::Display for LocalPart {
    /// Writes the local part in wire form, quoting it when it is not a
    /// dot-string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.0, true) {
            return f.write_str(&self.0);
        }
        f.write_str("\"")?;
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("\"")
    }
}

impl Address {
    /// Parses `local@domain` as it stands inside an SMTP path's brackets.
    pub fn parse(s: &str, utf8: bool) -> Result<Self, AddressError> {
        // The domain never contains '@' or '"'; the local part may (quoted),
        // so split at the last '@'.
        let (local, domain) = s.rsplit_once('@').ok_or(AddressError::MissingPart)?;
        if local.is_empty() || domain.is_empty() {
            return Err(AddressError::MissingPart);
        }
        Ok(Address {
            local: LocalPart::parse(local, utf8)?,
            domain: Domain::parse(domain, utf8)?,
        })
    }

    /// Builds an address from parts that are already valid.
    pub fn new(local: LocalPart, domain: Domain) -> Self {
        Address { local, domain }
    }

    /// The local part.
    pub fn local_part(&self) -> &LocalPart {
        &self.local
    }

    /// The domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// True when any part needs SMTPUTF8 (RFC 6531).
    pub fn is_utf8(&self) -> bool {
        !self.local.0.is_ascii() || !self.domain.as_str().is_ascii()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// RFC 5321 `atext` (RFC 5322 §3.2.3), plus non-ASCII under SMTPUTF8.
fn is_atext(c: char, utf8: bool) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || (utf8 && !c.is_ascii())
}

fn is_dot_string(s: &str, utf8: bool) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(|c| is_atext(c, utf8)))
}

/// Unquotes the rest of a quoted string after its opening quote.
fn unquote(rest: &str, utf8: bool) -> Result<String, AddressError> {
    let mut out = String::new();
    let mut chars = rest.chars();
    loop {
        match chars.next() {
            None => return Err(AddressError::BadLocalPart),
            Some('"') => break,
            // RFC 5321 quoted-pairSMTP = %d92 %d32-126
            Some('\\') => match chars.next() {
                Some(c) if (' '..='~').contains(&c) => out.push(c),
                _ => return Err(AddressError::BadLocalPart),
            },
            // qtextSMTP = %d32-33 / %d35-91 / %d93-126
            Some(c) if (' '..='~').contains(&c) => out.push(c),
            Some(c) if utf8 && !c.is_ascii() => out.push(c),
            Some(_) => return Err(AddressError::BadLocalPart),
        }
    }
    if chars.next().is_some() {
        return Err(AddressError::BadLocalPart);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parse_table() {
        let ok = [
            ("user@example.com", "user@example.com"),
            ("User.Name+tag@Example.COM", "User.Name+tag@example.com"),
            ("\"john doe\"@example.com", "\"john doe\"@example.com"),
            ("\"plain\"@example.com", "plain@example.com"),
            ("\"a\\\"b\"@x.org", "\"a\\\"b\"@x.org"),
            ("postmaster@[127.0.0.1]", "postmaster@[127.0.0.1]"),
        ];
        for (input, want) in ok {
            let got = Address::parse(input, false).map(|a| a.to_string());
            assert_eq!(got, Ok(want.to_string()), "{input}");
        }
        let bad = [
            "user",
            "@example.com",
            "user@",
            "a..b@x.org",
            ".a@x.org",
            "a.@x.org",
            "a b@x.org",
            "\"unterminated@x.org",
            "\"a\"b@x.org",
            "us(er@x.org",
            "user@exa_mple.com",
        ];
        for input in bad {
            assert!(Address::parse(input, false).is_err(), "{input}");
        }
        assert!(Address::parse("jürgen@example.de", false).is_err());
        assert!(Address::parse("jürgen@例え.jp", true).is_ok());
        let long = format!("{}@x.org", "a".repeat(65));
        assert_eq!(
            Address::parse(&long, false),
            Err(AddressError::LocalPartTooLong)
        );
    }

    #[test]
    fn user_key_folds_case_and_tag() {
        let key = |s: &str| Address::parse(s, false).map(|a| a.local_part().user_key());
        assert_eq!(key("Alice+lists@x.org"), Ok("alice".to_string()));
        assert_eq!(key("BOB@x.org"), Ok("bob".to_string()));
        assert_eq!(key("+only@x.org"), Ok("+only".to_string()));
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(local in "[ -~]{1,40}", domain in "[a-z]{1,10}\\.[a-z]{2,5}") {
            let lp = LocalPart(local.clone());
            let addr = Address::new(lp, Domain::parse(&domain, false).map_err(|e| TestCaseError::fail(e.to_string()))?);
            let parsed = Address::parse(&addr.to_string(), false).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed.local_part().as_str(), local.as_str());
        }
    }
}
