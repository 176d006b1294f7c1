//! Waking sessions when a directory changes, for a protocol that waits on its store (IMAP
//! IDLE): one inotify descriptor per server, read by one task, shared by every session.
//!
//! A session subscribes to the directories it cares about and awaits
//! [`Subscription::changed`]; the shell knows nothing of what the directories are. Watches
//! are counted, so that two sessions on one mailbox share one and the last to leave removes
//! it. Where inotify does not reach (a full watch table, a network filesystem changed from
//! another host), the driver keeps polling as before; the watch only makes it prompt.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use crate::inotify::{Inotify, CHANGES};

/// The server's inotify descriptor and, per watch, the subscriptions holding it (the watch
/// goes when the last one does).
pub struct Watcher {
    inotify: AsyncFd<Inotify>,
    watches: Mutex<HashMap<i32, Vec<Arc<Notify>>>>,
}

impl Watcher {
    /// A watcher with its reading task on the current runtime; `None` where inotify is not
    /// available (the drivers then only poll).
    pub fn start() -> Option<Arc<Watcher>> {
        let inotify = Inotify::new().ok()?;
        // SAFETY: an Inotify owns its descriptor, keeps it open until dropped, and always
        // returns that same one from as_raw_fd.
        let inotify =
            unsafe { AsyncFd::register_with_interest(inotify, tokio::io::Interest::READABLE) }
                .ok()?;
        let watcher = Arc::new(Watcher {
            inotify,
            watches: Mutex::new(HashMap::new()),
        });
        // The task lives as long as the runtime, as the server does.
        let reader = watcher.clone();
        tokio::spawn(async move {
            loop {
                let Ok(mut ready) = reader.inotify.readable().await else {
                    return;
                };
                let watches = reader.watches.lock().unwrap_or_else(|e| e.into_inner());
                ready.get_inner().drain(|wd| {
                    // wd -1: the kernel's queue overflowed and events were lost: wake all.
                    let woken = watches
                        .iter()
                        .filter(|(&watched, _)| wd == -1 || watched == wd)
                        .flat_map(|(_, holders)| holders);
                    for notify in woken {
                        // Stores a permit when the session is not waiting right now.
                        notify.notify_one();
                    }
                });
                drop(watches);
                ready.clear_ready();
            }
        });
        Some(watcher)
    }

    /// Hear of files created, removed or renamed in any of `dirs`; `None` if one of them
    /// cannot be watched.
    pub fn subscribe(self: &Arc<Self>, dirs: &[PathBuf]) -> Option<Subscription> {
        let notify = Arc::new(Notify::new());
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let mut wds = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let Ok(wd) = self.inotify.get_ref().add(dir, CHANGES) else {
                drop(watches);
                self.release(&wds, &notify);
                return None;
            };
            watches.entry(wd).or_default().push(notify.clone());
            wds.push(wd);
        }
        Some(Subscription {
            watcher: self.clone(),
            wds,
            notify,
        })
    }

    /// `notify` gives up the watches `wds`.
    fn release(&self, wds: &[i32], notify: &Arc<Notify>) {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        for wd in wds {
            let Some(holders) = watches.get_mut(wd) else {
                continue;
            };
            holders.retain(|held| !Arc::ptr_eq(held, notify));
            if holders.is_empty() {
                watches.remove(wd);
                self.inotify.get_ref().remove(*wd);
            }
        }
    }
}

/// A session's interest in some directories; dropping it ends the interest.
pub struct Subscription {
    watcher: Arc<Watcher>,
    wds: Vec<i32>,
    notify: Arc<Notify>,
}

impl Subscription {
    /// Resolves once something changed in the directories since the subscription was made
    /// or since this last resolved.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let wds = std::mem::take(&mut self.wds);
        self.watcher.release(&wds, &self.notify);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn wakes(subscription: &Subscription) -> bool {
        // Generous: this checks that the wake comes at all, not how fast.
        tokio::time::timeout(Duration::from_secs(10), subscription.changed())
            .await
            .is_ok()
    }

    /// Take every wake already pending, so that the next [`wakes`] proves a new one.
    async fn drain(subscription: &Subscription) {
        while tokio::time::timeout(Duration::from_millis(200), subscription.changed())
            .await
            .is_ok()
        {}
    }

    #[test]
    fn arrivals_removals_and_renames_wake_every_subscriber_of_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (new, cur) = (dir.path().join("new"), dir.path().join("cur"));
        std::fs::create_dir(&new).unwrap();
        std::fs::create_dir(&cur).unwrap();
        runtime().block_on(async {
            let watcher = Watcher::start().expect("inotify works here");
            let first = watcher.subscribe(&[new.clone(), cur.clone()]).unwrap();
            let second = watcher.subscribe(&[new.clone(), cur.clone()]).unwrap();
            assert_eq!(
                watcher.watches.lock().unwrap().len(),
                2,
                "one watch per folder"
            );

            drain(&first).await;
            std::fs::write(new.join("1"), "mail").unwrap();
            assert!(wakes(&first).await && wakes(&second).await);
            drain(&first).await;
            std::fs::rename(new.join("1"), cur.join("1:2,")).unwrap();
            assert!(wakes(&first).await);
            drain(&first).await;
            std::fs::rename(cur.join("1:2,"), cur.join("1:2,S")).unwrap();
            assert!(wakes(&first).await);
            drain(&first).await;
            std::fs::remove_file(cur.join("1:2,S")).unwrap();
            assert!(wakes(&first).await);

            // A change while nobody waits is not lost: the next wait returns at once.
            drain(&second).await;
            std::fs::write(new.join("2"), "mail").unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(wakes(&second).await);
            // Nothing happened since: no wake.
            drain(&first).await;
            assert!(
                tokio::time::timeout(Duration::from_millis(300), first.changed())
                    .await
                    .is_err()
            );

            drop(first);
            assert_eq!(
                watcher.watches.lock().unwrap().len(),
                2,
                "still held by second"
            );
            drop(second);
            assert!(
                watcher.watches.lock().unwrap().is_empty(),
                "the last one out removes them"
            );
        });
    }

    #[test]
    fn a_folder_that_cannot_be_watched_gives_no_subscription_and_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let watcher = Watcher::start().expect("inotify works here");
            let missing = dir.path().join("missing");
            assert!(watcher
                .subscribe(&[dir.path().to_owned(), missing])
                .is_none());
            assert!(watcher.watches.lock().unwrap().is_empty());
        });
    }
}
