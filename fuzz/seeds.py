#!/usr/bin/env python3
"""Writes the structured seed files of fuzz/corpus/.

Most targets take plain text (a command line, an address, an alias file, a
message, an envelope file) and their seeds are written by hand. The state
machine targets read a structured input (mailroom_core::fuzzing::Input:
data, then decision bytes, then the number of decision bytes) whose
operations name fragments by their index in the tables of the crates'
fuzzing modules. This script builds those seeds from readable scripts,
looking the fragments up in the Rust sources, so a table change only means
running it again:

    python3 fuzz/seeds.py

It overwrites only the files it names (prefix `seed-`); inputs the fuzzer
found, and regression inputs, stay.
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def rust_bytes(literal):
    """The value of a Rust byte string body (the escapes our tables use)."""
    out = bytearray()
    i = 0
    while i < len(literal):
        c = literal[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        e = literal[i + 1]
        if e == "x":
            out.append(int(literal[i + 2 : i + 4], 16))
            i += 4
            continue
        out.append({"r": 13, "n": 10, "t": 9, "0": 0, "\\": 92, '"': 34}[e])
        i += 2
    return bytes(out)


def table(crate, name):
    source = (ROOT / "crates" / crate / "src" / "fuzzing.rs").read_text()
    block = re.search(r"const " + name + r": \[&\[u8\]; \d+\] = \[(.*?)\n\];", source, re.S)
    return [rust_bytes(m) for m in re.findall(r'b"((?:[^"\\]|\\.)*)"', block.group(1))]


class Script:
    """Data operations plus decisions, encoded for one target."""

    def __init__(self, fragments, header, shift, kinds):
        self.fragments = fragments
        self.data = bytearray(header)
        self.decisions = bytearray()
        self.shift = shift  # op >> shift is the count - 1
        self.kinds = kinds  # operation name -> op % (1 << shift)

    def _op(self, kind, payload):
        limit = 256 >> self.shift
        for start in range(0, len(payload), limit):
            part = payload[start : start + limit]
            self.data.append(((len(part) - 1) << self.shift) | self.kinds[kind])
            self.data += part
        return self

    def send(self, *texts):
        """Fragments (looked up in the table), as one read each op."""
        return self._op("frag", bytes(self.fragments.index(t) for t in texts))

    def raw(self, data):
        return self._op("raw", data)

    def bytewise(self, *texts):
        return self._op("bytewise", bytes(self.fragments.index(t) for t in texts))

    def special(self, which):
        self.data.append((which << self.shift) | self.kinds["special"])
        return self

    def decide(self, *decisions):
        self.decisions += bytes(decisions)
        return self

    def build(self):
        assert len(self.decisions) < 256
        return bytes(self.data + self.decisions + bytes([len(self.decisions)]))


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ("seed-" + name)).write_bytes(data)


# ---------------------------------------------------------------- SMTP server

STATES = table("smtp-proto", "STATE_FRAGMENTS")


def smtp(flags=0):
    return Script(STATES, flags.to_bytes(2, "little"), 3,
                  {"frag": 0, "raw": 4, "bytewise": 6, "special": 7})


ACCEPT, TEMPFAIL, REJECT, ACCEPT_2XX, DEFER = 0, 5, 6, 7, 0xFF
AUTH_OK, AUTH_CHALLENGE, AUTH_FAIL = 0, 1, 2
TLS_OK, TLS_FAIL = 0, 7

write("smtp_session_states", "plain-transaction", smtp()
      .send(b"EHLO client.example\r\n", b"MAIL FROM:<sender@example.org>\r\n",
            b"RCPT TO:<rcpt@example.net>\r\n", b"RCPT TO:<Postmaster>\r\n", b"DATA\r\n")
      .send(b"Subject: test\r\n", b"\r\n", b"text of the message\r\n", b".hidden\r\n",
            b"..\r\n", b".\r\n", b"QUIT\r\n")
      .decide(ACCEPT, ACCEPT, REJECT, ACCEPT_2XX).build())

write("smtp_session_states", "starttls-auth-bdat", smtp(1 << 7)  # require AUTH
      .send(b"EHLO client.example\r\n", b"MAIL FROM:<sender@example.org>\r\n",
            b"STARTTLS\r\n", b"NOOP\r\n")
      .send(b"EHLO client.example\r\n", b"AUTH PLAIN\r\n")
      .send(b"dXNlcg==\r\n")
      .send(b"MAIL FROM:<s@example.org> SIZE=100 BODY=8BITMIME\r\n",
            b"RCPT TO:<r@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r@example.net\r\n",
            b"BDAT 5\r\n", b"abcde", b"BDAT 2 LAST\r\nab", b"QUIT\r\n")
      .decide(TLS_OK, AUTH_CHALLENGE, AUTH_OK, ACCEPT, ACCEPT, ACCEPT_2XX).build())

write("smtp_session_states", "smuggling-in-data", smtp()
      .send(b"EHLO client.example\r\n",
            b"MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n")
      .send(b"text of the message\r\n", b"\n.\n", b"\r.\r",
            b"MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n",
            b"\r\n.\r\nQUIT\r\n")
      .decide(ACCEPT, ACCEPT).build())

write("smtp_session_states", "deferred-decisions-pipelined", smtp()
      .raw(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
      .raw(b"RCPT TO:<e@f.example>\r\nDATA\r\nhi\r\n.\r\nRSET\r\nQUIT\r\n")
      .special(2)
      .decide(DEFER, ACCEPT, DEFER, TEMPFAIL, ACCEPT, DEFER, ACCEPT_2XX).build())

write("smtp_session_states", "smtputf8-vrfy-expn-auth-plaintext",
      smtp((1 << 2) | (1 << 3) | (1 << 4))  # AUTH without TLS, VRFY, EXPN
      .send(b"EHLO [192.0.2.1]\r\n", b"VRFY postmaster\r\n", b"EXPN staff\r\n",
            b"AUTH PLAIN AHVzZXIAcGFzcw==\r\n",
            b"MAIL FROM:<j\xc3\xbcrgen@b\xc3\xbccher.example> SMTPUTF8\r\n",
            b"RCPT TO:<\xc3\xbc@example.net>\r\n", b"DATA\r\n", b"8bit \xc3\xa9t\xc3\xa9\r\n",
            b".\r\n", b"AUTH LOGIN\r\n", b"QUIT\r\n")
      .decide(ACCEPT_2XX, ACCEPT_2XX, AUTH_OK, ACCEPT, ACCEPT, ACCEPT).build())

write("smtp_session_states", "limits-and-errors", smtp((1 << 5) | (1 << 6))  # small, 3 errors
      .send(b"EHLO client.example\r\n", b"MAIL FROM:<s@example.org> SIZE=99999999999999999999999\r\n",
            b"MAIL FROM:<>\r\n", b"RCPT TO:<rcpt@example.net>\r\n", b"RCPT TO:<Postmaster>\r\n",
            b"RCPT TO:<r@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r@example.net\r\n",
            b"DATA\r\n",
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            b"\r\n.\r\n")
      .bytewise(b"EHLO xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
                b"\r", b"SEND FROM:<a@b.example>\r\n", b"\0", b"\r\n")
      .decide(ACCEPT, ACCEPT, ACCEPT).build())

write("smtp_session_states", "tls-handshake-fails", smtp()
      .send(b"HELO client.example\r\n", b"STARTTLS\r\n", b"EHLO client.example\r\n")
      .decide(TLS_FAIL).build())
write("smtp_session_states", "timeout-in-data", smtp()
      .send(b"EHLO client.example\r\n",
            b"MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n", b"abcde")
      .special(0).send(b"QUIT\r\n").build())

# ----------------------------------------------------------------- SMTP DATA
# [limits, chunking] + body: limits bits 0-1 size (max, 16, 256, 4096), bits
# 2-3 line (1000, 1, 10, 80); chunking 0 = whole, else cycling sizes.

write("smtp_data", "message-with-dots", b"\x00\x05Subject: x\r\n\r\n..dot\r\n...\r\n.x\r\n\r\n.\r\nQUIT\r\n")
write("smtp_data", "empty-message", b"\x00\x00.\r\nQUIT\r\n")
write("smtp_data", "smuggling", b"\x00\x03body\n.\nMAIL FROM:<e@x>\r\n\r.\r\n\r\n.\r\r\n\r\n.\r\n")
write("smtp_data", "nul-near-dot", b"\x00\x01a\r\n.\x00\r\n\x00.\r\n.\r\n")
write("smtp_data", "line-limit", b"\x08\x00short\r\n0123456789abc\r\n.\r\n")
write("smtp_data", "size-limit", b"\x01\x07" + b"x" * 40 + b"\r\n.\r\n")
write("smtp_data", "unterminated", b"\x0f\x01abc\r\n.\r")

# -------------------------------------------------------------- SMTP client

SERVER = table("smtp-client", "SERVER_FRAGMENTS")


def client(flags=0):
    return Script(SERVER, bytes([flags]), 2, {"frag": 0, "raw": 2, "special": 3})


SUBMIT, SUBMIT_TWO, SUBMIT_BAD, SUBMIT_UTF8, QUIT = 0, 4, 8, 12, 2

# A reply-parser-friendly first byte: 0x30 = default limits, 3-byte chunks.
write("smtp_client_reply", "delivery-pipelined", client(0x30)
      .send(b"220 mx.example ESMTP\r\n", b"250-mx.example\r\n", b"250-PIPELINING\r\n",
            b"250-SIZE 100\r\n", b"250-8BITMIME\r\n", b"250-DSN\r\n", b"250 CHUNKING\r\n")
      .send(b"250 2.1.0 OK\r\n", b"250 2.1.5 OK\r\n", b"550 5.1.1 no such user\r\n",
            b"354 go ahead\r\n")
      .send(b"250 2.0.0 queued as X\r\n", b"221 2.0.0 bye\r\n")
      .decide(SUBMIT_TWO, 3, QUIT).build())
write("smtp_client_reply", "starttls-auth-submission", client(0x06 | 0x30)  # Required TLS, AUTH
      .send(b"220 mx.example ESMTP\r\n", b"250-mx.example\r\n", b"250-STARTTLS\r\n",
            b"250 CHUNKING\r\n", b"220 2.0.0 ready for TLS\r\n")
      .send(b"250-mx.example\r\n", b"250-AUTH PLAIN LOGIN\r\n", b"250-8BITMIME\r\n",
            b"250-SMTPUTF8\r\n", b"250 CHUNKING\r\n", b"235 2.7.0 ok\r\n")
      .send(b"250 2.1.0 OK\r\n", b"250 2.1.5 OK\r\n", b"354 go ahead\r\n",
            b"250 2.0.0 queued as X\r\n", b"421 4.3.2 shutting down\r\n")
      .decide(0, SUBMIT_UTF8 | 0x40, 5).build())
write("smtp_client_reply", "helo-fallback-and-failures", client(0x01)
      .send(b"220-mx.example\r\n", b"220 mx.example ESMTP\r\n", b"500 5.5.2 what\r\n",
            b"250 mx.example\r\n", b"450 4.2.0 try later\r\n")
      .special(1).build())
write("smtp_client_reply", "broken-framing", client(0x17)
      .raw(b"220 ok\r\n250-a\r\n251 b\r\n")
      .send(b"250", b"\r", b"\n", b"199 bad code\r\n", b"250 4.0.0 mismatched class\r\n")
      .build())

# --------------------------------------------------------------- POP3 server

CLIENT_LINES = table("pop3-proto", "CLIENT_FRAGMENTS")


def pop3(flags=0, listing=3):
    return Script(CLIENT_LINES, bytes([flags, listing]), 3,
                  {"frag": 0, "raw": 4, "bytewise": 6, "special": 7})


LOGIN_OK, LOGIN_BAD, RETR_FAIL, UPDATE_FAIL = 0, 2, 7, 7

write("pop3_session", "user-pass-retr-dele-quit", pop3()
      .send(b"CAPA\r\n", b"USER alice\r\n", b"PASS secret\r\n", b"STAT\r\n", b"LIST\r\n",
            b"UIDL\r\n", b"RETR 1\r\n", b"TOP 3 1\r\n", b"DELE 1\r\n", b"DELE 2\r\n",
            b"LIST 1\r\n", b"QUIT\r\n")
      .decide(LOGIN_OK, 3, 2).build())
write("pop3_session", "stls-then-sasl", pop3(flags=1, listing=5)  # no plaintext login
      .send(b"USER alice\r\n", b"STLS\r\n", b"CAPA\r\n")
      .send(b"AUTH\r\n", b"AUTH PLAIN\r\n", b"AGFsaWNlAHNlY3JldA==\r\n", b"RETR 5\r\n",
            b"TOP 4 18446744073709551615\r\n", b"RSET\r\n", b"QUIT\r\n")
      .decide(0, LOGIN_OK, 1, UPDATE_FAIL).build())
write("pop3_session", "apop-and-failures", pop3(listing=0x82)  # a bad uid
      .send(b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n",
            b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n", b"UIDL\r\n", b"RETR 1\r\n",
            b"LIST 99999999999999999999999\r\n", b"NOOP\r\n")
      .special(1)
      .decide(LOGIN_BAD, 0xFF, LOGIN_OK, RETR_FAIL).build())
write("pop3_session", "garbage-and-error-limit", pop3(flags=32)
      .bytewise(b"user Bob\r\n", b"\r", b"\n", b"\0", b"x")
      .raw(b"LIST\r\nPASS x\r\n*\r\nAUTH PLAIN =\r\n")
      .send(b"LIST 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78\r\n")
      .build())

# --------------------------------------------------------------- POP3 client

POP3_SERVER = table("pop3-proto", "SERVER_FRAGMENTS")


def fetch(flags=0):
    return Script(POP3_SERVER, bytes([flags]), 2, {"frag": 0, "raw": 2, "special": 3})


CAPA, STLS, USER, PASS, AUTH_PLAIN, STAT, LIST, UIDL, RETR1, DELE1, NOOP, RSET, POP_QUIT = (
    0, 1, 2, 3, 4, 5, 6, 7, 8 | 1 << 5, 10 | 1 << 5, 11, 12, 13)

write("pop3_client", "fetch-session", fetch()
      .send(b"+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n")
      .send(b"+OK Capability list follows\r\n", b"USER\r\n", b"UIDL\r\n", b".\r\n")
      .send(b"+OK\r\n").send(b"+OK\r\n")
      .send(b"+OK 2 320\r\n")
      .send(b"+OK\r\n", b"1 120\r\n", b"2 200 extra\r\n", b".\r\n")
      .send(b"+OK\r\n", b"1 uid-a\r\n", b".\r\n")
      .send(b"+OK 120 octets\r\n", b"Subject: x\r\n", b"\r\n", b"..\r\n", b".dot\r\n",
            b"body line\r\n", b".\r\n")
      .send(b"+OK\r\n").send(b"+OK\r\n")
      .decide(CAPA, USER, PASS, STAT, LIST, UIDL, RETR1, DELE1, POP_QUIT).build())
write("pop3_client", "stls-sasl", fetch()
      .send(b"+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n")
      .send(b"+OK\r\n").send(b"+ \r\n", b"+OK\r\n").send(b"-ERR [SYS/TEMP] later\r\n")
      .decide(STLS, 0, 14, NOOP).build())
write("pop3_client", "hostile-listing", fetch(2)
      .send(b"+OK\r\n").send(b"+OK\r\n", b"18446744073709551616 1\r\n", b"0 5\r\n")
      .send(b"+OK\r\n",
            b"3 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
      .raw(b"-ERR [IN-USE] locked\r\n+OK\r\n\r")
      .decide(USER, PASS, LIST, UIDL).build())
write("pop3_client", "bare-line-end-in-message", fetch(1)
      .send(b"+OK\r\n").raw(b"+OK\r\n+OK\r\n+OK 3 octets\r\nab\nc\r\n.\r\n")
      .decide(AUTH_PLAIN, RETR1).build())

print("seeds written under", CORPUS)
