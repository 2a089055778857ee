//! Small read-only looks into a received message (RFC 5322), for the
//! session driver's checks.

/// Counts the `Received:` header fields (case-insensitive) in the header
/// section, i.e. up to the first empty line; the driver compares it with
/// its hop limit to detect mail loops (RFC 5321 §6.3). Continuation lines
/// (starting with a space or tab) are not counted. Lines may end in CR LF
/// or LF.
pub fn received_header_count(message: &[u8]) -> usize {
    let mut count = 0;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(name) = line.get(..NAME.len())
            && name.eq_ignore_ascii_case(NAME)
        {
            // RFC 5322 §4.5.2 (obsolete syntax) allows blanks before the colon.
            let after = line.get(NAME.len()..).unwrap_or_default();
            let after = after.iter().skip_while(|&&b| b == b' ' || b == b'\t');
            if after.copied().next() == Some(b':') {
                count += 1;
            }
        }
    }
    count
}

const NAME: &[u8] = b"Received";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let table: [(&[u8], usize); 9] = [
            (b"", 0),
            (b"Subject: x\r\n\r\nReceived: in body\r\n", 0),
            (b"Received: a\r\nreceived: b\r\nRECEIVED:c\r\n\r\n", 3),
            (
                b"Received: a\r\n\tfrom x\r\n by y\r\nSubject: s\r\n\r\nbody",
                1,
            ),
            (b"Received : obsolete\r\n\r\n", 1),
            (
                b"Received-SPF: pass\r\nReceivedX: y\r\nX-Received: z\r\n\r\n",
                0,
            ),
            (b"\r\nReceived: a\r\n", 0),
            (b"Received: a\nReceived: b\n\nReceived: c\n", 2),
            (b"Received: only headers, no body", 1),
        ];
        for (input, want) in table {
            assert_eq!(
                received_header_count(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
