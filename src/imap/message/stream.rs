//! Sending a section: the octets of a file range with bare LF turned into CRLF on the fly,
//! cut to a `<origin.count>` partial, a bounded amount per call.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Octets read from the file per read.
const CHUNK: usize = 64 * 1024;

thread_local! {
    /// The read buffer of every section this thread sends: one, allocated and zeroed once,
    /// rather than one per message fetched.
    static READ_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What a `BODY[section]` consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionSource {
    /// Octets `start..end` of the file, sent with bare LF as CRLF: `len` octets in all.
    File { start: u64, end: u64, len: u64 },
    /// Made up here (HEADER.FIELDS and the like), already with CRLF line ends.
    Bytes(Vec<u8>),
}

impl SectionSource {
    /// Octets as sent.
    pub fn len(&self) -> u64 {
        match self {
            SectionSource::File { len, .. } => *len,
            SectionSource::Bytes(bytes) => bytes.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A section being sent, with RFC 3501's `<origin.count>` partial applied.
#[derive(Debug)]
pub struct SectionStream {
    source: SectionSource,
    len: u64,
    /// Octets as sent still to drop before writing (the partial's origin).
    skip: u64,
    /// Octets still to write.
    left: u64,
    /// The next file offset to read, or index into the bytes.
    pos: u64,
    /// Whether the octet before `pos` in the file is a CR; None before the first read.
    prev_cr: Option<bool>,
    /// A CRLF was cut after its CR by the size limit.
    pending_lf: bool,
}

impl SectionStream {
    /// The literal to send for `source`, cut to `partial` (origin, count) when given.
    pub fn new(source: SectionSource, partial: Option<(u32, u32)>) -> SectionStream {
        let total = source.len();
        let (skip, len) = match partial {
            Some((origin, count)) => {
                let origin = u64::from(origin);
                if origin >= total {
                    (0, 0)
                } else {
                    (origin, u64::from(count).min(total - origin))
                }
            }
            None => (0, total),
        };
        let pos = match &source {
            SectionSource::File { start, .. } => *start,
            SectionSource::Bytes(_) => skip,
        };
        SectionStream {
            source,
            len,
            skip,
            left: len,
            pos,
            prev_cr: None,
            pending_lf: false,
        }
    }

    /// The literal's length: what [`SectionStream::fill`] will have written when done.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append up to about `max` more octets to `out`, reading `file` as needed; true when
    /// the whole literal has been written.
    ///
    /// # Errors
    /// Reading fails, or the file is shorter than when it was scanned.
    pub fn fill(&mut self, file: &mut File, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        READ_BUFFER.with_borrow_mut(|buf| {
            if buf.len() < CHUNK {
                buf.resize(CHUNK, 0);
            }
            self.fill_through(buf, file, out, max)
        })
    }

    /// [`SectionStream::fill`], reading through `buf` (at least [`CHUNK`] octets).
    fn fill_through(
        &mut self,
        buf: &mut [u8],
        file: &mut File,
        out: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<bool> {
        let budget = max.max(1) as u64;
        if self.left == 0 {
            return Ok(true);
        }
        let end = match &self.source {
            SectionSource::Bytes(bytes) => {
                let start = usize::try_from(self.pos).unwrap_or(usize::MAX);
                let n = usize::try_from(self.left.min(budget)).unwrap_or(usize::MAX);
                let chunk = bytes.get(start..).unwrap_or_default();
                let chunk = &chunk[..n.min(chunk.len())];
                out.extend_from_slice(chunk);
                self.pos += chunk.len() as u64;
                self.left -= chunk.len() as u64;
                if chunk.is_empty() {
                    self.left = 0;
                }
                return Ok(self.left == 0);
            }
            SectionSource::File { end, .. } => *end,
        };
        let mut written = 0u64;
        if self.prev_cr.is_none() {
            let mut before = [0u8; 1];
            self.prev_cr = Some(if self.pos > 0 {
                file.read_exact_at(&mut before, self.pos - 1)
                    .map_err(shorter)?;
                before[0] == b'\r'
            } else {
                false
            });
        }
        let mut prev_cr = self.prev_cr.unwrap_or(false);
        if self.pending_lf {
            self.pending_lf = false;
            out.push(b'\n');
            written += 1;
            self.left -= 1;
        }
        while self.left > 0 && written < budget {
            if self.pos >= end {
                return Err(shorter(io::ErrorKind::UnexpectedEof.into()));
            }
            let want = if self.skip > 0 {
                CHUNK as u64
            } else {
                (budget - written).min(CHUNK as u64)
            };
            let want = usize::try_from(want.min(end - self.pos)).unwrap_or(CHUNK);
            // One pread per chunk: the position is ours, the file's offset is not used.
            let n = loop {
                match file.read_at(&mut buf[..want], self.pos) {
                    Ok(0) => return Err(shorter(io::ErrorKind::UnexpectedEof.into())),
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            // A run at a time: the octets up to the next LF are dropped (the partial's
            // origin) or copied whole; then the LF, with a CR before it if it was bare.
            let data = &buf[..n];
            let mut at = 0;
            while at < n && self.left > 0 && written < budget {
                let lf = memchr::memchr(b'\n', &data[at..]).map_or(n, |p| at + p);
                if lf > at {
                    let run = if self.skip > 0 {
                        let dropped =
                            (lf - at).min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                        self.skip -= dropped as u64;
                        dropped
                    } else {
                        let room = self.left.min(budget - written) as usize;
                        let run = (lf - at).min(room);
                        out.extend_from_slice(&data[at..at + run]);
                        written += run as u64;
                        self.left -= run as u64;
                        run
                    };
                    prev_cr = data[at + run - 1] == b'\r';
                    at += run;
                    continue;
                }
                // `data[at]` is an LF.
                at += 1;
                let bare = !prev_cr;
                prev_cr = false;
                if bare {
                    if self.skip > 0 {
                        self.skip -= 1;
                    } else {
                        out.push(b'\r');
                        written += 1;
                        self.left -= 1;
                        if self.left == 0 {
                            break;
                        }
                        if written >= budget {
                            self.pending_lf = true;
                            break;
                        }
                    }
                }
                if self.skip > 0 {
                    self.skip -= 1;
                } else {
                    out.push(b'\n');
                    written += 1;
                    self.left -= 1;
                }
            }
            self.pos += at as u64;
        }
        self.prev_cr = Some(prev_cr);
        Ok(self.left == 0)
    }
}

fn shorter(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the message file is shorter than when it was scanned",
        )
    } else {
        error
    }
}
