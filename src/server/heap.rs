//! Gives memory that quiet sessions let go of back to the system.
//!
//! A quiet connection frees its buffers, a hibernating session its small allocations (an
//! IMAP session, one file name per message). The C allocator keeps such holes for reuse, so
//! the process's RSS does not fall: 10,000 IMAP sessions opened at once and hibernating 30 s
//! later went from 155 to 163 MiB, the freed lists left in place and the hibernated state
//! added. `malloc_trim` hands the whole free pages inside those holes back
//! (`MADV_DONTNEED`): the same run then fell from 155 to 141 MiB (`benches/imap_memory.rs`,
//! 2026-12-03). A wave of sessions going quiet asks for one trim a little after its last
//! member, not one each; the trim itself runs off the runtime's workers, since it walks the
//! whole heap under the allocator's locks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long requests are gathered before one trim serves them all.
const GATHER: Duration = Duration::from_secs(2);

/// A trim is scheduled and has not begun: a request now is served by it.
static PENDING: AtomicBool = AtomicBool::new(false);

/// Ask for freed memory to go back to the system soon. Call it after freeing a good deal, from
/// inside the server's runtime; elsewhere it does nothing.
pub fn release_soon() {
    if tokio::runtime::Handle::try_current().is_err() || PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(GATHER).await;
        // From here on a request schedules a trim of its own: this one may begin before its free.
        PENDING.store(false, Ordering::Release);
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks and trims glibc's own heap; any pad is valid.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl's, the BSDs') return free pages on their own, or offer no call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
