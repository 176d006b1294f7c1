//! The DATA reader: finds the end of a message's data and undoes dot-stuffing, streaming.
//!
//! Only `CRLF . CRLF` ends the data (RFC 5321 §4.1.1.4). A bare `LF . LF`, `CR . CR` or
//! `LF . CRLF` is message content: a server that took one of them for the end while the
//! next hop does not (or the other way round) lets a sender smuggle a second message past
//! it (the CVE-2023-51766 class). Lines are therefore CRLF-delimited for the terminator and
//! for dot-unstuffing; a bare CR or LF is kept as a byte of the line.
//!
//! The output uses the store's line ends, LF, as Dovecot saves mail (`mail_save_crlf = no`):
//! each CRLF becomes LF, so `,S=` counts what is on disk and POP3 restores CRLF on the way
//! out. Memory is bounded: nothing is buffered beyond the current input, whatever the line
//! lengths; lines longer than RFC 5321's 1,000 octets and output past the size limit are
//! only counted, and the caller refuses the message at its end.

/// RFC 5321 §4.5.3.1.6: a text line is at most 1,000 octets with its CRLF.
pub const MAX_TEXT_LINE: usize = 1000;

/// Where the reader is in the line structure of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After CRLF (or at the very start): a dot here is special.
    LineStart,
    /// A dot at the start of a line, not yet known to be the terminator or stuffing.
    Dot,
    /// `CRLF .` then CR: the terminator if LF follows.
    DotCr,
    /// Inside a line.
    Middle,
    /// A CR inside a line, held back until we know whether LF follows.
    Cr,
    /// The terminator has been read.
    Done,
}

/// A resumable reader of one message's data.
#[derive(Debug, Clone)]
pub struct DataReader {
    state: State,
    /// Octets of the current line so far, without its line end.
    line_len: usize,
    /// Whether some line was longer than [`MAX_TEXT_LINE`].
    line_too_long: bool,
    /// Octets produced (after unstuffing and CRLF to LF).
    size: u64,
}

impl Default for DataReader {
    fn default() -> Self {
        Self::new()
    }
}

impl DataReader {
    pub fn new() -> Self {
        DataReader {
            state: State::LineStart,
            line_len: 0,
            line_too_long: false,
            size: 0,
        }
    }

    /// Whether the terminator has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether a line exceeded 1,000 octets (with its CRLF).
    pub fn line_too_long(&self) -> bool {
        self.line_too_long
    }

    /// Octets of message produced so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Read from `input`, appending the message's octets to `out`, until the input ends or
    /// the data does. Returns how many octets of `input` belong to the data: what follows
    /// the terminator is the client's next (pipelined) command.
    pub fn read(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let start_len = out.len();
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Middle => {
                    // The fast path: copy everything up to the next CR or LF at once.
                    let rest = &input[i..];
                    let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                    out.extend_from_slice(&rest[..run]);
                    self.grow_line(run);
                    i += run;
                    if i < input.len() {
                        let byte = input[i];
                        i += 1;
                        if byte == b'\r' {
                            self.state = State::Cr;
                        } else {
                            // A bare LF: content, but it does end the line for the
                            // length count (many clients still send bare LFs).
                            out.push(b'\n');
                            self.line_len = 0;
                        }
                    }
                }
                state => {
                    let byte = input[i];
                    i += 1;
                    self.step(state, byte, out);
                }
            }
        }
        self.size += (out.len() - start_len) as u64;
        i
    }

    /// One octet in any state but `Middle`'s fast path and `Done`.
    fn step(&mut self, state: State, byte: u8, out: &mut Vec<u8>) {
        match (state, byte) {
            (State::LineStart, b'.') => self.state = State::Dot,
            (State::Dot, b'\r') => self.state = State::DotCr,
            (State::DotCr, b'\n') => self.state = State::Done,
            (State::Cr, b'\n') => {
                out.push(b'\n');
                self.line_len = 0;
                self.state = State::LineStart;
            }
            // A CR not followed by LF is kept; the new CR may start a CRLF.
            (State::Cr | State::DotCr, b'\r') => {
                out.push(b'\r');
                self.grow_line(1);
                self.state = State::Cr;
            }
            (State::Cr | State::DotCr, other) => {
                out.push(b'\r');
                self.grow_line(1);
                self.middle_byte(other, out);
            }
            // The stuffed dot of `..` or `.text` is dropped (it still counts on the line).
            (State::Dot, other) => {
                self.grow_line(1);
                self.middle_byte(other, out);
            }
            (State::LineStart | State::Middle, other) => self.middle_byte(other, out),
            (State::Done, _) => {}
        }
    }

    fn middle_byte(&mut self, byte: u8, out: &mut Vec<u8>) {
        match byte {
            b'\r' => self.state = State::Cr,
            b'\n' => {
                out.push(b'\n');
                self.line_len = 0;
                self.state = State::Middle;
            }
            other => {
                out.push(other);
                self.grow_line(1);
                self.state = State::Middle;
            }
        }
    }

    fn grow_line(&mut self, by: usize) {
        self.line_len += by;
        // The limit counts the CRLF too.
        if self.line_len + 2 > MAX_TEXT_LINE {
            self.line_too_long = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: find the first `CRLF.CRLF` (the data starts at a line start), split
    /// what precedes it into CRLF lines, drop one leading dot of each, join with LF.
    fn naive(input: &[u8]) -> Option<(Vec<u8>, usize)> {
        let mut framed = b"\r\n".to_vec();
        framed.extend_from_slice(input);
        let end = framed.windows(5).position(|w| w == b"\r\n.\r\n")?;
        let body = &framed[2..end + 2];
        let mut out = Vec::new();
        let mut lines: Vec<&[u8]> = Vec::new();
        let mut rest = body;
        while let Some(at) = rest.windows(2).position(|w| w == b"\r\n") {
            lines.push(&rest[..at]);
            rest = &rest[at + 2..];
        }
        assert!(rest.is_empty());
        for line in lines {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
            out.push(b'\n');
        }
        Some((out, end + 3))
    }

    fn chunked(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<usize>) {
        let mut reader = DataReader::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        bounds.sort_unstable();
        bounds.push(input.len());
        for bound in bounds {
            if bound < at {
                continue;
            }
            let used = reader.read(&input[at..bound], &mut out);
            if reader.is_done() {
                return (out, Some(at + used));
            }
            assert_eq!(used, bound - at);
            at = bound;
        }
        (out, None)
    }

    fn check(input: &[u8]) {
        let expected = naive(input);
        for split in 0..=input.len() {
            let (out, consumed) = chunked(input, &[split]);
            match &expected {
                Some((body, used)) => {
                    assert_eq!(consumed, Some(*used), "split {split} of {input:?}");
                    assert_eq!(&out, body, "split {split} of {input:?}");
                }
                None => assert_eq!(consumed, None, "split {split} of {input:?}"),
            }
        }
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf() {
        check(b"Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n");
        check(b".\r\n");
        check(b"\r\n.\r\n");
        check(b"..\r\n...\r\n.x\r\n.\r\n");
        // The smuggling forms are content.
        for smuggle in [
            &b"a\n.\nMAIL FROM:<x@y>\r\n"[..],
            b"a\r.\rMAIL FROM:<x@y>\r\n",
            b"a\n.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r\n.\nb\r\n",
            b"a\r\n.\rb\r\n",
        ] {
            check(smuggle);
            assert!(naive(smuggle).is_none(), "{smuggle:?}");
            let (_, consumed) = chunked(smuggle, &[]);
            assert_eq!(consumed, None, "{smuggle:?} must not end the data");
        }
        check(b"a\n.\nb\r\n.\r\n");
        check(b"x\r\r\n.\r\n");
        check(b".\r\r\n.\r\n");
        check(b"\r.\r\n.\r\n");
    }

    #[test]
    fn long_lines_are_flagged_and_not_buffered() {
        let mut reader = DataReader::new();
        let mut out = Vec::new();
        let line = vec![b'x'; MAX_TEXT_LINE - 2];
        reader.read(&line, &mut out);
        reader.read(b"\r\n", &mut out);
        assert!(!reader.line_too_long());
        reader.read(&[b'y'; MAX_TEXT_LINE - 1], &mut out);
        assert!(reader.line_too_long());
        let used = reader.read(b"\r\n.\r\n", &mut out);
        assert_eq!(used, 5);
        assert!(reader.is_done());
        assert_eq!(reader.size(), out.len() as u64);
    }

    proptest! {
        #[test]
        fn matches_the_reference_at_any_chunking(
            input in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a')], 0..40),
            cuts in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let (out, consumed) = chunked(&input, &cuts);
            match naive(&input) {
                Some((body, used)) => {
                    prop_assert_eq!(consumed, Some(used));
                    prop_assert_eq!(out, body);
                }
                None => prop_assert_eq!(consumed, None),
            }
        }
    }
}
