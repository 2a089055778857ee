//! The service extensions a server advertises in its EHLO reply
//! (RFC 5321 §4.1.1.1: one `keyword [params]` per line after the first).

use crate::reply::Reply;

/// What the server said it supports. All `false`/empty after HELO, and
/// forgotten after STARTTLS until the next EHLO (RFC 3207 §4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// RFC 2920: commands may be sent in groups.
    pub pipelining: bool,
    /// RFC 1870: `SIZE=` may be declared on MAIL.
    pub size: bool,
    /// RFC 1870 §3: the fixed maximum message size. `None` when the
    /// server gave none, or gave 0 ("no fixed maximum").
    pub max_size: Option<u64>,
    /// RFC 6152: 8-bit message bodies (`BODY=8BITMIME`).
    pub eight_bit_mime: bool,
    /// RFC 6531: UTF-8 addresses and headers.
    pub smtputf8: bool,
    /// RFC 3207: the server offers TLS.
    pub starttls: bool,
    /// RFC 4954: SASL mechanisms offered, upper-cased, in the server's order.
    pub auth: Vec<String>,
    /// RFC 2034: replies carry enhanced status codes.
    pub enhanced_status_codes: bool,
    /// RFC 3461: NOTIFY/ORCPT on RCPT, RET/ENVID on MAIL.
    pub dsn: bool,
    /// RFC 3030: BDAT. Recorded only; this client always sends DATA.
    pub chunking: bool,
}

impl Extensions {
    /// Reads the extensions from a positive EHLO reply. The first line is
    /// the server's name and greeting; keywords are case-insensitive
    /// (RFC 5321 §2.4); unknown keywords are ignored.
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => ext.pipelining = true,
                "SIZE" => {
                    ext.size = true;
                    // A malformed or overflowing value conveys no limit we
                    // could enforce; the server still checks on its side.
                    ext.max_size = words
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|&n| n > 0);
                }
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "STARTTLS" => ext.starttls = true,
                "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
                "DSN" => ext.dsn = true,
                "CHUNKING" => ext.chunking = true,
                "AUTH" => ext.add_mechanisms(words),
                _ => {
                    // Pre-RFC 2554 servers still say `AUTH=LOGIN PLAIN`.
                    if let Some(first) = keyword.strip_prefix("AUTH=") {
                        ext.add_mechanisms(std::iter::once(first).chain(words));
                    }
                }
            }
        }
        ext
    }

    /// True when the server offers the SASL mechanism `name` (any case).
    pub fn supports_auth(&self, name: &str) -> bool {
        self.auth.iter().any(|m| m.eq_ignore_ascii_case(name))
    }

    fn add_mechanisms<'a>(&mut self, names: impl Iterator<Item = &'a str>) {
        for name in names {
            let name = name.to_ascii_uppercase();
            if !name.is_empty() && !self.auth.contains(&name) {
                self.auth.push(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ehlo(lines: &[&str]) -> Extensions {
        let reply = Reply {
            code: 250,
            enhanced: None,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        };
        Extensions::from_ehlo(&reply)
    }

    #[test]
    fn keywords_table() {
        let table: &[(&[&str], Extensions)] = &[
            (&["mx"], Extensions::default()),
            // The greeting line is never a keyword.
            (&["PIPELINING"], Extensions::default()),
            (
                &["mx", "PIPELINING"],
                Extensions {
                    pipelining: true,
                    ..Default::default()
                },
            ),
            (
                &["mx", "pipelining"],
                Extensions {
                    pipelining: true,
                    ..Default::default()
                },
            ),
            (
                &["mx", "SIZE"],
                Extensions {
                    size: true,
                    ..Default::default()
                },
            ),
            (
                &["mx", "SIZE 0"],
                Extensions {
                    size: true,
                    ..Default::default()
                },
            ),
            (
                &["mx", "SIZE 1000"],
                Extensions {
                    size: true,
                    max_size: Some(1000),
                    ..Default::default()
                },
            ),
            (
                &["mx", "SIZE lots"],
                Extensions {
                    size: true,
                    ..Default::default()
                },
            ),
            (
                &["mx", "SIZE 99999999999999999999999"],
                Extensions {
                    size: true,
                    ..Default::default()
                },
            ),
            (
                &[
                    "mx",
                    "8BITMIME",
                    "SMTPUTF8",
                    "STARTTLS",
                    "ENHANCEDSTATUSCODES",
                    "DSN",
                    "CHUNKING",
                ],
                Extensions {
                    eight_bit_mime: true,
                    smtputf8: true,
                    starttls: true,
                    enhanced_status_codes: true,
                    dsn: true,
                    chunking: true,
                    ..Default::default()
                },
            ),
            (
                &["mx", "AUTH PLAIN login CRAM-MD5"],
                Extensions {
                    auth: vec!["PLAIN".into(), "LOGIN".into(), "CRAM-MD5".into()],
                    ..Default::default()
                },
            ),
            (
                &["mx", "AUTH=LOGIN PLAIN", "AUTH LOGIN PLAIN"],
                Extensions {
                    auth: vec!["LOGIN".into(), "PLAIN".into()],
                    ..Default::default()
                },
            ),
            (&["mx", "", "X-UNKNOWN 1", "HELP"], Extensions::default()),
        ];
        for (lines, want) in table {
            assert_eq!(&ehlo(lines), want, "lines {lines:?}");
        }
    }

    #[test]
    fn supports_auth_ignores_case() {
        let ext = ehlo(&["mx", "AUTH login"]);
        assert!(ext.supports_auth("LOGIN"));
        assert!(ext.supports_auth("login"));
        assert!(!ext.supports_auth("PLAIN"));
    }
}
