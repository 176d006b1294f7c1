//! mboxrd: many messages in one file, each introduced by a `From ` line.
//!
//! In mboxrd every body line matching `^>*From ` gets one more `>` when written and loses one
//! when read, so any message survives the round trip unchanged, provided it ends with a line
//! end (the framing adds one otherwise). The reader streams: each message is handed to a sink
//! line by line and never held whole in memory.

use std::io::{self, BufRead, Write};

/// Whether a line (without its line end) needs quoting: `From ` after any number of `>`.
fn is_from_line(line: &[u8]) -> bool {
    let quotes = line.iter().take_while(|&&b| b == b'>').count();
    line[quotes..].starts_with(b"From ")
}

/// Writes messages as mboxrd.
pub struct MboxWriter<W: Write> {
    out: W,
}

impl<W: Write> MboxWriter<W> {
    pub fn new(out: W) -> Self {
        MboxWriter { out }
    }

    /// Append one message, with a `From sender date` separator, quoting, a line end if the
    /// message lacked one, and the blank line that ends each entry.
    ///
    /// # Errors
    /// Fails when the sink does.
    pub fn write_message(&mut self, sender: &str, asctime: &str, message: &[u8]) -> io::Result<()> {
        let sender = if sender.is_empty() || sender.contains(char::is_whitespace) {
            "MAILER-DAEMON"
        } else {
            sender
        };
        writeln!(self.out, "From {sender} {asctime}")?;
        let mut rest = message;
        while !rest.is_empty() {
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            let (line, tail) = rest.split_at(end);
            if is_from_line(line) {
                self.out.write_all(b">")?;
            }
            self.out.write_all(line)?;
            rest = tail;
        }
        if !message.ends_with(b"\n") {
            self.out.write_all(b"\n")?;
        }
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Where split messages go: a new message starts, receives its lines, and ends.
pub trait MessageSink {
    type Message;
    /// Begin a message and return the writer its lines go to.
    fn start(&mut self) -> io::Result<Self::Message>;
    /// Write one line (with its line end) to the message being built.
    fn line(&mut self, message: &mut Self::Message, line: &[u8]) -> io::Result<()>;
    /// The message is complete.
    fn finish(&mut self, message: Self::Message) -> io::Result<()>;
}

/// Split an mboxrd stream, unquoting `>From ` lines, and feed every message to `sink`.
/// Returns the number of messages. Text before the first `From ` line is an error, since it
/// means the input is not an mbox.
///
/// # Errors
/// Fails when reading or the sink fails, or when the input does not start with `From `.
pub fn split<R: BufRead, S: MessageSink>(mut input: R, sink: &mut S) -> io::Result<usize> {
    let mut line = Vec::new();
    let mut current: Option<S::Message> = None;
    // The blank line before a separator belongs to the framing, so it is held back until the
    // next line shows whether a separator follows.
    let mut held_blank: Option<Vec<u8>> = None;
    let mut count = 0;
    let mut at_start = true;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let bare = line.strip_suffix(b"\n").unwrap_or(&line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        let separator = bare.starts_with(b"From ") && (at_start || held_blank.is_some());
        at_start = false;
        if separator {
            held_blank = None;
            if let Some(message) = current.take() {
                sink.finish(message)?;
            }
            current = Some(sink.start()?);
            count += 1;
            continue;
        }
        let Some(message) = current.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an mbox file: it does not start with a 'From ' line",
            ));
        };
        if let Some(blank) = held_blank.take() {
            sink.line(message, &blank)?;
        }
        if bare.is_empty() {
            held_blank = Some(line.clone());
            continue;
        }
        if is_from_line(&line) && line[0] == b'>' {
            sink.line(message, &line[1..])?;
        } else {
            sink.line(message, &line)?;
        }
    }
    if let Some(message) = current.take() {
        sink.finish(message)?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<Vec<u8>>);

    impl MessageSink for Collect {
        type Message = Vec<u8>;
        fn start(&mut self) -> io::Result<Vec<u8>> {
            Ok(Vec::new())
        }
        fn line(&mut self, message: &mut Vec<u8>, line: &[u8]) -> io::Result<()> {
            message.extend_from_slice(line);
            Ok(())
        }
        fn finish(&mut self, message: Vec<u8>) -> io::Result<()> {
            self.0.push(message);
            Ok(())
        }
    }

    fn round_trip(messages: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut writer = MboxWriter::new(Vec::new());
        for m in messages {
            writer
                .write_message("a@b", "Thu Nov 26 04:14:19 2026", m)
                .unwrap();
        }
        let mbox = writer.into_inner();
        let mut sink = Collect(Vec::new());
        assert_eq!(split(&mbox[..], &mut sink).unwrap(), messages.len());
        sink.0
    }

    #[test]
    fn from_lines_and_blank_lines_survive() {
        let messages: [&[u8]; 4] = [
            b"Subject: one\n\nFrom here\n>From there\n>>From afar\n\n\n",
            b"Subject: two\r\n\r\nFrom crlf\r\n\r\n",
            b"Subject: three\n\nlast line\n",
            b"Subject: four\n\n\nFrom the start of a paragraph\n",
        ];
        assert_eq!(round_trip(&messages), messages);
    }

    #[test]
    fn input_must_start_with_a_separator() {
        let mut sink = Collect(Vec::new());
        let err = split(&b"Subject: x\n\nbody\n"[..], &mut sink).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
