//! The one printer: every command hands it values that are both human-readable and
//! serialisable, and the printer writes one or the other to stdout.
//!
//! JSON output is JSON Lines: one object per value, one value per line, so a stream of
//! messages or users can be piped to `jq` as it is produced. Diagnostics never come here:
//! they go to stderr, so `--json` output is always machine-readable.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Whether output is for people or for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// Something a command produces: shown as text by [`fmt::Display`] (which should end with a
/// newline where a line is wanted) or as one JSON object by [`Serialize`].
pub trait Render: fmt::Display + Serialize {}

impl<T: fmt::Display + Serialize> Render for T {}

/// Writes rendered values to a sink, flushing after each so that a reader sees every value as
/// soon as it is complete and a closed pipe is noticed at once.
pub struct Printer<W: Write> {
    format: Format,
    out: W,
}

impl Printer<io::Stdout> {
    /// A printer on the process's stdout.
    pub fn stdout(format: Format) -> Self {
        Printer::new(format, io::stdout())
    }
}

impl<W: Write> Printer<W> {
    pub fn new(format: Format, out: W) -> Self {
        Printer { format, out }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Write one value and flush.
    ///
    /// # Errors
    /// Fails when the sink does (for stdout, typically a closed pipe).
    pub fn print<R: Render + ?Sized>(&mut self, value: &R) -> io::Result<()> {
        match self.format {
            Format::Human => write!(self.out, "{value}")?,
            Format::Json => {
                serde_json::to_writer(&mut self.out, value)?;
                self.out.write_all(b"\n")?;
            }
        }
        self.out.flush()
    }

    /// The sink itself, for commands whose output is raw bytes (such as mboxrd).
    pub fn raw(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One status line on stderr that rewrites itself, for long work. It shows only when stderr
/// is a terminal and stdout is not (when both are, the results themselves show progress and
/// a status line would tangle with them), so pipes and logs stay clean; at most ten times a
/// second.
pub struct Progress {
    enabled: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    /// Progress on stderr, enabled as described above.
    pub fn stderr() -> Self {
        Progress {
            enabled: io::stderr().is_terminal() && !io::stdout().is_terminal(),
            last: None,
            shown: false,
        }
    }

    /// Show `line()` unless a line was shown less than 100 ms ago.
    pub fn update(&mut self, line: impl FnOnce() -> String) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}", line());
        let _ = err.flush();
    }

    /// Erase the line, if one was shown.
    pub fn finish(&mut self) {
        if std::mem::take(&mut self.shown) {
            let _ = write!(io::stderr().lock(), "\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Greeting {
        name: &'static str,
        count: u32,
    }

    impl fmt::Display for Greeting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            writeln!(f, "hello {} ({})", self.name, self.count)
        }
    }

    #[test]
    fn human_uses_display_and_json_writes_one_line_per_value() {
        let values = [
            Greeting {
                name: "asterix",
                count: 2,
            },
            Greeting {
                name: "obelix",
                count: 3,
            },
        ];
        let mut human = Printer::new(Format::Human, Vec::new());
        let mut json = Printer::new(Format::Json, Vec::new());
        for value in &values {
            human.print(value).unwrap();
            json.print(value).unwrap();
        }
        assert_eq!(
            String::from_utf8(human.into_inner()).unwrap(),
            "hello asterix (2)\nhello obelix (3)\n"
        );
        assert_eq!(
            String::from_utf8(json.into_inner()).unwrap(),
            "{\"name\":\"asterix\",\"count\":2}\n{\"name\":\"obelix\",\"count\":3}\n"
        );
    }
}
