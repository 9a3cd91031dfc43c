//! Polling a system's event feed (`GET {url}/events?after=SEQ`, the mocks' pull feed) for a
//! system that offers no webhooks, with a durable cursor.
//!
//! One task per polled target. Every `poll_interval` it reads pages after its cursor until the
//! feed has no more, hands each page's events to the engine (journaled and synced before the
//! engine answers) and only then writes the cursor to `cursors/{system}.json` in the data folder
//! (written aside, synced, renamed). So:
//! - **no event is skipped across a restart**: the cursor never passes an event that is not in
//!   the journal; a crash between the sync and the cursor's write leaves the cursor behind;
//! - **none is applied twice**: what is read again after such a crash is the same source and id,
//!   which the engine's dedupe answers as a duplicate.
//!
//! An event the engine pushes back (its latency class is full) stops the page there: the cursor
//! stays before it, and polling resumes after its `Retry-After`. An event that breaks the
//! envelope or its schema can never be accepted; it is logged, counted and passed over, as
//! `POST /events` would refuse it. A feed that answers 410 (events fell off before they were
//! read) is logged and counted as a gap, and polling continues at the oldest event it still
//! keeps. The cursor remembers the feed's URL: a cursor for another URL (another feed) is not
//! used.

use crate::driver::{EngineDown, Msg};
use crate::metrics::Metrics;
use plantloop_core::engine::Ack;
use plantloop_core::event::parse_event_value;
use plantloop_core::model::System;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// The folder of the cursors, in the data folder.
pub const CURSORS_DIR: &str = "cursors";
/// The longest one feed request may take.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// The audit trail names events read from a feed as delivered by `poll:<system>`.
pub const POLL_PRINCIPAL_PREFIX: &str = "poll:";
/// Pages read in one round at most, so one busy feed cannot hold its task forever.
pub const PAGES_PER_ROUND_MAX: u32 = 100;

/// A feed cursor as stored: the feed it belongs to and the last sequence number taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub url: String,
    pub after: u64,
}

/// Where `system`'s cursor is kept.
pub fn cursor_path(data: &Path, system: System) -> PathBuf {
    data.join(CURSORS_DIR).join(format!("{system}.json"))
}

/// The stored cursor of `system` for the feed at `url`: 0 when there is none, it is unreadable,
/// or it belongs to another feed.
pub fn load_cursor(data: &Path, system: System, url: &str) -> u64 {
    std::fs::read(cursor_path(data, system))
        .ok()
        .and_then(|b| serde_json::from_slice::<Cursor>(&b).ok())
        .filter(|c| c.url == url)
        .map_or(0, |c| c.after)
}

/// Writes a cursor durably: aside, synced, renamed over the old one, the folder synced.
pub fn store_cursor(data: &Path, system: System, cursor: &Cursor) -> std::io::Result<()> {
    use std::io::Write;
    let path = cursor_path(data, system);
    let dir = data.join(CURSORS_DIR);
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!("{system}.json.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(cursor).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(&dir)?.sync_all()
}

/// One polled feed.
pub struct Poller {
    pub system: System,
    /// The target's base URL; the feed is `{url}/events`.
    pub url: String,
    pub interval: Duration,
    pub data: PathBuf,
    pub client: reqwest::Client,
    pub engine: Sender<Msg>,
    pub metrics: Arc<Metrics>,
}

#[derive(Deserialize)]
struct Page {
    next: u64,
    events: Vec<serde_json::Value>,
}

/// How one page went.
enum Round {
    /// More may follow at once.
    More,
    /// The feed is read to its end for now.
    Done,
    /// Wait this long before reading again (pushed back, or the feed or engine failed).
    Wait(Duration),
}

impl Poller {
    /// Polls until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut after = load_cursor(&self.data, self.system, &self.url);
        tracing::info!(system = %self.system, after, "polling {}/events", self.url);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            for _ in 0..PAGES_PER_ROUND_MAX {
                match self.page(&mut after).await {
                    Round::More => continue,
                    Round::Done => break,
                    Round::Wait(d) => {
                        tokio::select! {
                            _ = tokio::time::sleep(d) => {}
                            _ = stop.wait_for(|s| *s) => return,
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Who delivered what the poller reads, in the audit trail: `poll:<system>`.
    pub fn principal(&self) -> Arc<str> {
        format!("{POLL_PRINCIPAL_PREFIX}{}", self.system).into()
    }

    fn outcome(&self, outcome: &'static str) {
        self.metrics.poll(self.system, outcome);
    }

    /// Reads one page after `after`, journals its events and moves the cursor past those taken.
    async fn page(&self, after: &mut u64) -> Round {
        let url = format!("{}/events?after={after}", self.url);
        let resp = match self.client.get(&url).timeout(POLL_TIMEOUT).send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(system = %self.system, "polling {url}: {e}");
                self.outcome("unreachable");
                return Round::Wait(self.interval);
            }
        };
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        if status == reqwest::StatusCode::GONE {
            // `…; the oldest kept is N`: continue just before N.
            let oldest = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_owned))
                .and_then(|d| d.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()));
            tracing::error!(
                system = %self.system, after = *after, ?oldest,
                "the feed no longer keeps the events after the cursor: they are lost"
            );
            self.outcome("gap");
            return match oldest {
                Some(n) if n > *after + 1 => {
                    *after = n - 1;
                    Round::More
                }
                _ => Round::Wait(self.interval),
            };
        }
        if !status.is_success() {
            tracing::warn!(system = %self.system, %status, "polling {url}");
            self.outcome("failed");
            return Round::Wait(self.interval);
        }
        let Ok(page) = serde_json::from_slice::<Page>(&body) else {
            tracing::warn!(system = %self.system, "polling {url}: not a feed page");
            self.outcome("failed");
            return Round::Wait(self.interval);
        };
        if page.events.is_empty() {
            self.outcome("empty");
            return Round::Done;
        }
        let read = page.events.len() as u64;
        // Sequence numbers of the events taken to the engine, in page order.
        let mut events = Vec::with_capacity(page.events.len());
        let mut seqs = Vec::with_capacity(page.events.len());
        for (i, v) in page.events.into_iter().enumerate() {
            match parse_event_value(v) {
                Ok(e) => {
                    events.push(e);
                    seqs.push(*after + 1 + i as u64);
                }
                Err(e) => {
                    tracing::warn!(system = %self.system, seq = *after + 1 + i as u64,
                        "a feed event refused: {e}");
                    self.metrics.event_refused("feed");
                }
            }
        }
        let acks = if events.is_empty() {
            vec![]
        } else {
            match submit(&self.engine, events, self.principal()).await {
                Ok(a) => a,
                Err(EngineDown(why)) => {
                    tracing::warn!(system = %self.system, "the engine took no events: {why}");
                    self.outcome("engine-down");
                    return Round::Wait(self.interval);
                }
            }
        };
        // Past every event before the first one pushed back (refused ones included).
        let pushed_back = acks.iter().position(|a| matches!(a, Ack::RetryAfter(_)));
        let (to, wait) = match pushed_back {
            Some(i) => {
                let d = match acks[i] {
                    Ack::RetryAfter(d) => Duration::from_micros(d.as_micros()),
                    _ => self.interval,
                };
                (seqs[i] - 1, Some(d))
            }
            None => (page.next.max(*after + read), None),
        };
        if to > *after {
            *after = to;
            let cursor = Cursor {
                url: self.url.clone(),
                after: to,
            };
            let data = self.data.clone();
            let system = self.system;
            let stored =
                tokio::task::spawn_blocking(move || store_cursor(&data, system, &cursor)).await;
            if !matches!(stored, Ok(Ok(()))) {
                tracing::warn!(system = %self.system, "cannot store the feed cursor: {stored:?}");
            }
        }
        self.outcome(if wait.is_some() {
            "pushed-back"
        } else {
            "read"
        });
        // After a page, read on until one comes back empty.
        match wait {
            Some(d) => Round::Wait(d.max(Duration::from_millis(10))),
            None => Round::More,
        }
    }
}

async fn submit(
    engine: &Sender<Msg>,
    events: Vec<plantloop_core::event::Event>,
    principal: Arc<str>,
) -> Result<Vec<Ack>, EngineDown> {
    let (reply, rx) = oneshot::channel();
    engine
        .send(Msg::Events {
            events,
            principal,
            reply,
        })
        .map_err(|_| EngineDown("the engine has stopped".into()))?;
    rx.await
        .map_err(|_| EngineDown("the engine has stopped".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_kept_for_its_own_feed_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_cursor(dir.path(), System::Erp, "http://a"), 0);
        let c = Cursor {
            url: "http://a".into(),
            after: 42,
        };
        store_cursor(dir.path(), System::Erp, &c).unwrap();
        assert_eq!(load_cursor(dir.path(), System::Erp, "http://a"), 42);
        assert_eq!(load_cursor(dir.path(), System::Erp, "http://b"), 0);
        assert_eq!(load_cursor(dir.path(), System::Qms, "http://a"), 0);
    }
}
