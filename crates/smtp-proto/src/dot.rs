//! RFC 5321 §4.5.2 transparency ("dot-stuffing") for the sending side.

/// The end-of-data line the client sends after [`stuff`]'s output.
pub const END_OF_DATA: &[u8] = b".\r\n";

/// Prepares a message for DATA: every line starting with "." gets one more
/// "." (RFC 5321 §4.5.2), and the result always ends in CR LF so that
/// [`END_OF_DATA`] can follow directly.
///
/// Line endings are made safe on the way, because we never send a bare CR
/// or LF (RFC 5321 §2.3.8; SMTP smuggling, CVE-2023-51764): a bare LF or a
/// bare CR becomes CR LF. A message that does not end in CR LF gets one
/// appended. The empty message stays empty. For a message that already
/// has CR LF line endings only and ends in CR LF, un-stuffing the result
/// gives back exactly the input.
pub fn stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 2);
    let mut line_start = true;
    let mut rest = data;
    while !rest.is_empty() {
        if line_start && rest.first() == Some(&b'.') {
            out.push(b'.');
        }
        match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => {
                out.extend_from_slice(rest);
                out.extend_from_slice(b"\r\n");
                break;
            }
            Some(at) => {
                out.extend_from_slice(rest.get(..at).unwrap_or_default());
                out.extend_from_slice(b"\r\n");
                // CR LF is one line end; a lone CR or LF is one too.
                let len = if rest.get(at..at + 2) == Some(b"\r\n") {
                    2
                } else {
                    1
                };
                rest = rest.get(at + len..).unwrap_or_default();
                line_start = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let table: [(&[u8], &[u8]); 11] = [
            (b"", b""),
            (b"a\r\n", b"a\r\n"),
            (b".\r\n", b"..\r\n"),
            (b"a\r\n.b\r\n..\r\n", b"a\r\n..b\r\n...\r\n"),
            (b"no newline", b"no newline\r\n"),
            (b".", b"..\r\n"),
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"a\n.\n", b"a\r\n..\r\n"),
            (b"a\r.\r", b"a\r\n..\r\n"),
            (b"a\r\r\n", b"a\r\n\r\n"),
            (b"a. b\r\n", b"a. b\r\n"),
        ];
        for (input, want) in table {
            assert_eq!(
                stuff(input),
                want.to_vec(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
