//! The sweep: find the unread mails, print each one, then delete exactly the printed ones.
//!
//! Everything is addressed by UID, never by sequence number, because sequence numbers shift
//! when other clients expunge. The mailbox is selected read-write and its UIDVALIDITY
//! remembered; a change aborts the sweep before anything is deleted. Mails are fetched with
//! `BODY.PEEK[]` (nothing becomes \Seen before it is printed) in chunks bounded by bytes and
//! by count, because the imap crate buffers each whole response: memory stays bounded
//! whatever the mailbox holds, and mails are printed as each chunk arrives.
//!
//! A mail counts as printed only when its whole body arrived and the printer accepted and
//! flushed it. If the output fails (a reader such as `head` quit early), what the reader
//! really consumed is unknowable (a pipe buffers up to 64 KiB), so nothing at all is deleted.
//! Likewise, if fetching fails half way, nothing is deleted: the printed mails stay unread
//! on the server and the next run prints them again. A duplicate is better than a loss.
//!
//! Deleting is `UID STORE +FLAGS.SILENT (\Deleted)` then `UID EXPUNGE` of the same UIDs
//! (UIDPLUS), so mails another client marked \Deleted survive; plain EXPUNGE is used only on
//! servers without UIDPLUS, and only with `--allow-expunge-all`. Afterwards a `UID SEARCH`
//! checks which of the requested UIDs are really gone.

use std::collections::HashSet;
use std::fmt;
use std::io;

use anyhow::{anyhow, Result};
use chrono::{DateTime, FixedOffset};
use imap::types::UnsolicitedResponse;
use imap_proto::ResponseCode;

use super::connect::{imap_error, Endpoint, Session};
use crate::exit::{ExitStatus, Failure};
use crate::output::Progress;

/// Most octets fetched in one `UID FETCH` (a single larger mail is fetched alone).
pub const CHUNK_BYTES: u64 = 4 << 20;
/// Most mails fetched in one `UID FETCH`.
pub const CHUNK_MAILS: usize = 500;
/// Fewer unread mails than this show no progress line.
const PROGRESS_MIN_MAILS: usize = 20;
/// How many UIDs' sizes are asked for at once.
const SIZE_WINDOW: usize = 2000;
/// Most ranges in one UID set, to keep command lines far below server limits.
const MAX_RANGES: usize = 500;

/// What the sweep is asked to do.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub mailbox: String,
    pub keep: bool,
    pub allow_expunge_all: bool,
}

/// Where printed mails go.
pub trait Output {
    /// Write one mail; return only once the output accepted all of it (flushed).
    ///
    /// # Errors
    /// The output failed; the sweep then deletes nothing.
    fn print(&mut self, mail: &FetchedMail<'_>) -> io::Result<()>;

    /// Checked once more before deleting: is the reader still there? A pipe whose reader
    /// quit after the last write fails no write, but nothing proves it read what we wrote.
    ///
    /// # Errors
    /// The reader is gone.
    fn confirm(&mut self) -> io::Result<()>;
}

/// One mail as it arrived from the server.
pub struct FetchedMail<'a> {
    pub uid: u32,
    pub source: &'a [u8],
    pub internal_date: Option<DateTime<FixedOffset>>,
}

/// What the sweep did, for the summary on stderr.
#[derive(Debug, Default)]
pub struct Report {
    pub mailbox: String,
    pub unread: usize,
    pub printed: usize,
    pub bytes: u64,
    pub deleted: usize,
    pub kept: bool,
    /// Unread when the sweep began, gone before they could be fetched (another client).
    pub vanished: Vec<u32>,
    /// Asked to be expunged, yet still there afterwards.
    pub not_expunged: Vec<u32>,
    /// Mails that plain EXPUNGE removed beyond ours (`--allow-expunge-all` only).
    pub expunged_others: usize,
    /// Why printing stopped early, if it did.
    pub output_error: Option<io::Error>,
}

impl Report {
    /// The exit status this outcome deserves.
    pub fn status(&self) -> ExitStatus {
        match &self.output_error {
            Some(error) if error.kind() == io::ErrorKind::BrokenPipe => ExitStatus::Success,
            Some(_) => ExitStatus::Failure,
            None if !self.not_expunged.is_empty() => ExitStatus::Server,
            None => ExitStatus::Success,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} unread, printed {} ({} bytes), deleted {}",
            self.mailbox, self.unread, self.printed, self.bytes, self.deleted
        )?;
        if self.kept {
            write!(f, " (--keep: nothing changed on the server)")?;
        }
        if let Some(error) = &self.output_error {
            write!(
                f,
                "\nstdout failed after {} mails ({error}): nothing was deleted, since the reader \
                 may not have read what was written",
                self.printed
            )?;
        }
        if !self.vanished.is_empty() {
            write!(
                f,
                "\n{} mails were removed by another client before they could be fetched (UIDs {})",
                self.vanished.len(),
                list(&self.vanished)
            )?;
        }
        if !self.not_expunged.is_empty() {
            write!(
                f,
                "\nmismatch: asked to expunge {} mails, but {} are still there (UIDs {}); they \
                 were printed and will be printed again next time",
                self.deleted + self.not_expunged.len(),
                self.not_expunged.len(),
                list(&self.not_expunged)
            )?;
        }
        if self.expunged_others > 0 {
            write!(
                f,
                "\nplain EXPUNGE also removed {} mails other clients had marked \\Deleted",
                self.expunged_others
            )?;
        }
        Ok(())
    }
}

fn list(uids: &[u32]) -> String {
    uid_sets(uids, usize::MAX).join(",")
}

/// Compress sorted, distinct UIDs into IMAP sets (`1:4,7,9:12`), each with at most
/// `max_ranges` ranges.
pub fn uid_sets(uids: &[u32], max_ranges: usize) -> Vec<String> {
    let mut sets = Vec::new();
    let mut current = String::new();
    let mut ranges = 0;
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        i += 1;
        if ranges == max_ranges {
            sets.push(std::mem::take(&mut current));
            ranges = 0;
        }
        if !current.is_empty() {
            current.push(',');
        }
        if start == end {
            current.push_str(&start.to_string());
        } else {
            current.push_str(&format!("{start}:{end}"));
        }
        ranges += 1;
    }
    if !current.is_empty() {
        sets.push(current);
    }
    sets
}

/// Group mails, in order, into fetches of at most `max_bytes` and `max_mails` each; a mail
/// larger than `max_bytes` is fetched alone.
pub fn plan_chunks(sizes: &[(u32, u64)], max_bytes: u64, max_mails: usize) -> Vec<Vec<u32>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for &(uid, size) in sizes {
        if !chunk.is_empty() && (bytes + size > max_bytes || chunk.len() == max_mails) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        chunk.push(uid);
        bytes += size;
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// Run the sweep on a logged-in session, printing to `output`.
///
/// # Errors
/// The server refused or broke a command (exit 5), the connection failed (exit 4), the
/// mailbox's UIDVALIDITY changed, or the server lacks UIDPLUS and `--allow-expunge-all` was
/// not given. Nothing is deleted in any of these cases.
pub fn sweep(
    session: &mut Session,
    endpoint: &Endpoint,
    options: &SweepOptions,
    output: &mut dyn Output,
) -> Result<Report> {
    let capabilities = session
        .capabilities()
        .map_err(|e| imap_error(e, endpoint, "CAPABILITY"))?;
    let uidplus = capabilities.has_str("UIDPLUS");
    if !options.keep && !uidplus && !options.allow_expunge_all {
        return Err(server_failure(format!(
            "{endpoint} lacks UIDPLUS, so mailtool cannot expunge only the mails it printed: \
             plain EXPUNGE would also remove every mail another client marked \\Deleted \
             (use --keep to print without deleting, or --allow-expunge-all to accept that)"
        )));
    }
    let mailbox = session
        .select(&options.mailbox)
        .map_err(|e| imap_error(e, endpoint, &format!("SELECT {}", options.mailbox)))?;
    let uid_validity = mailbox.uid_validity.ok_or_else(|| {
        server_failure(format!(
            "{endpoint} sent no UIDVALIDITY for {}, so UIDs cannot be trusted",
            options.mailbox
        ))
    })?;
    if mailbox.is_read_only && !options.keep {
        return Err(server_failure(format!(
            "{endpoint} opened {} read-only, so nothing could be deleted (use --keep to only print)",
            options.mailbox
        )));
    }
    let mut unread: Vec<u32> = session
        .uid_search("UNSEEN")
        .map_err(|e| imap_error(e, endpoint, "UID SEARCH UNSEEN"))?
        .into_iter()
        .collect();
    unread.sort_unstable();
    let mut report = Report {
        mailbox: options.mailbox.clone(),
        unread: unread.len(),
        kept: options.keep,
        ..Report::default()
    };
    check_uid_validity(session, uid_validity, endpoint)?;

    // A progress line only for many mails, and never interleaved with a trace.
    let mut progress =
        (!endpoint.trace && unread.len() >= PROGRESS_MIN_MAILS).then(Progress::stderr);
    let mut printed = HashSet::with_capacity(unread.len());
    let fetched = fetch_and_print(
        session,
        endpoint,
        uid_validity,
        &unread,
        &mut printed,
        &mut report,
        &mut progress,
        output,
    );
    if let Some(progress) = progress.as_mut() {
        progress.finish();
    }
    fetched?;
    if report.output_error.is_none() && !options.keep {
        report.output_error = output.confirm().err();
    }

    report.vanished = unread
        .iter()
        .copied()
        .filter(|uid| !printed.contains(uid))
        .collect();
    if report.output_error.is_some() {
        // Unprinted mails are not "vanished": printing stopped before them.
        report.vanished.clear();
        return Ok(report);
    }
    if options.keep {
        return Ok(report);
    }
    delete(
        session,
        endpoint,
        uid_validity,
        uidplus,
        printed,
        &mut report,
    )?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn fetch_and_print(
    session: &mut Session,
    endpoint: &Endpoint,
    uid_validity: u32,
    unread: &[u32],
    printed: &mut HashSet<u32>,
    report: &mut Report,
    progress: &mut Option<Progress>,
    output: &mut dyn Output,
) -> Result<()> {
    for window in unread.chunks(SIZE_WINDOW) {
        let mut sizes = Vec::with_capacity(window.len());
        let wanted: HashSet<u32> = window.iter().copied().collect();
        for set in uid_sets(window, MAX_RANGES) {
            let fetches = session
                .uid_fetch(&set, "(UID RFC822.SIZE)")
                .map_err(|e| imap_error(e, endpoint, "UID FETCH (RFC822.SIZE)"))?;
            for fetch in fetches.iter() {
                if let (Some(uid), Some(size)) = (fetch.uid, fetch.size) {
                    if wanted.contains(&uid) {
                        sizes.push((uid, u64::from(size)));
                    }
                }
            }
        }
        sizes.sort_unstable();
        sizes.dedup_by_key(|(uid, _)| *uid);
        check_uid_validity(session, uid_validity, endpoint)?;

        for chunk in plan_chunks(&sizes, CHUNK_BYTES, CHUNK_MAILS) {
            let set = uid_sets(&chunk, usize::MAX).join(",");
            let fetches = session
                .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
                .map_err(|e| imap_error(e, endpoint, "UID FETCH (BODY.PEEK[])"))?;
            check_uid_validity(session, uid_validity, endpoint)?;
            let chunk: HashSet<u32> = chunk.into_iter().collect();
            for fetch in fetches.iter() {
                let (Some(uid), Some(source)) = (fetch.uid, fetch.body()) else {
                    continue;
                };
                // Only the UIDs asked for, each once: unsolicited FETCH responses about
                // other mails, or a repeated one, are not ours to print or delete.
                if !chunk.contains(&uid) || printed.contains(&uid) {
                    continue;
                }
                let mail = FetchedMail {
                    uid,
                    source,
                    internal_date: fetch.internal_date(),
                };
                if let Err(error) = output.print(&mail) {
                    report.output_error = Some(error);
                    return Ok(());
                }
                printed.insert(uid);
                report.printed += 1;
                report.bytes += source.len() as u64;
                if let Some(progress) = progress.as_mut() {
                    let (done, total, bytes) = (report.printed, report.unread, report.bytes);
                    progress.update(|| {
                        format!("{done}/{total} mails, {:.1} MiB", bytes as f64 / 1048576.0)
                    });
                }
            }
        }
    }
    Ok(())
}

fn delete(
    session: &mut Session,
    endpoint: &Endpoint,
    uid_validity: u32,
    uidplus: bool,
    printed: HashSet<u32>,
    report: &mut Report,
) -> Result<()> {
    if printed.is_empty() {
        return Ok(());
    }
    let mut printed: Vec<u32> = printed.into_iter().collect();
    printed.sort_unstable();
    let sets = uid_sets(&printed, MAX_RANGES);
    // Printing may have taken long; NOOP collects whatever the server announced meanwhile
    // (a new UIDVALIDITY above all) before any flag is touched.
    session
        .noop()
        .map_err(|e| imap_error(e, endpoint, "NOOP"))?;
    check_uid_validity(session, uid_validity, endpoint)?;
    for set in &sets {
        session
            .uid_store(set, "+FLAGS.SILENT (\\Deleted)")
            .map_err(|e| imap_error(e, endpoint, "UID STORE +FLAGS.SILENT (\\Deleted)"))?;
    }
    check_uid_validity(session, uid_validity, endpoint)?;
    let mut expunge_responses = 0;
    if uidplus {
        for set in &sets {
            let deleted = session
                .uid_expunge(set)
                .map_err(|e| imap_error(e, endpoint, "UID EXPUNGE"))?;
            expunge_responses += deleted.seqs().count() + deleted.uids().count();
        }
    } else {
        let deleted = session
            .expunge()
            .map_err(|e| imap_error(e, endpoint, "EXPUNGE"))?;
        expunge_responses += deleted.seqs().count() + deleted.uids().count();
    }
    let mut survivors = Vec::new();
    for set in &sets {
        survivors.extend(
            session
                .uid_search(format!("UID {set}"))
                .map_err(|e| imap_error(e, endpoint, "UID SEARCH UID"))?,
        );
    }
    survivors.sort_unstable();
    report.deleted = printed.len() - survivors.len();
    report.not_expunged = survivors;
    report.expunged_others = expunge_responses.saturating_sub(report.deleted);
    Ok(())
}

/// Abort when the server announces a new UIDVALIDITY: every UID we hold would now name a
/// different mail, or none.
fn check_uid_validity(session: &mut Session, expected: u32, endpoint: &Endpoint) -> Result<()> {
    for response in session.take_all_unsolicited() {
        if let UnsolicitedResponse::Ok {
            code: Some(ResponseCode::UidValidity(now)),
            ..
        } = response
        {
            if now != expected {
                return Err(server_failure(format!(
                    "the UIDVALIDITY of the mailbox on {endpoint} changed from {expected} to \
                     {now} during the sweep, so its UIDs no longer name the same mails; \
                     nothing was deleted (run again)"
                )));
            }
        }
    }
    Ok(())
}

fn server_failure(message: String) -> anyhow::Error {
    Failure::new(ExitStatus::Server, anyhow!(message)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs_and_split_by_range_count() {
        assert_eq!(uid_sets(&[], 10), Vec::<String>::new());
        assert_eq!(uid_sets(&[1, 2, 3, 5, 7, 8], 10), ["1:3,5,7:8"]);
        assert_eq!(uid_sets(&[1, 2, 3, 5, 7, 8], 2), ["1:3,5", "7:8"]);
        assert_eq!(uid_sets(&[4_000_000_000], 1), ["4000000000"]);
    }

    #[test]
    fn chunks_respect_bytes_and_count_and_keep_big_mails_alone() {
        let sizes = [(1, 3), (2, 3), (3, 10), (4, 1), (5, 1), (6, 1)];
        assert_eq!(
            plan_chunks(&sizes, 6, 2),
            vec![vec![1, 2], vec![3], vec![4, 5], vec![6]]
        );
        assert_eq!(plan_chunks(&sizes, 100, 100), vec![vec![1, 2, 3, 4, 5, 6]]);
        assert!(plan_chunks(&[], 1, 1).is_empty());
    }

    #[test]
    fn broken_pipe_is_success_other_output_errors_fail_and_mismatch_is_server_error() {
        let mut report = Report::default();
        assert_eq!(report.status(), ExitStatus::Success);
        report.not_expunged = vec![3];
        assert_eq!(report.status(), ExitStatus::Server);
        report.output_error = Some(io::ErrorKind::BrokenPipe.into());
        assert_eq!(report.status(), ExitStatus::Success);
        report.output_error = Some(io::Error::other("disk full"));
        assert_eq!(report.status(), ExitStatus::Failure);
        assert!(report.to_string().contains("nothing was deleted"));
    }
}
