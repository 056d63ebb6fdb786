//! etcd's native watch behind [`calico_datastore::Watch`].
//!
//! Each watch has a client of its own (its own runtime and connections, with the store's
//! TLS material and credentials), so a reader blocked on a watch never holds up the
//! store's requests. The watch asks for previous values (`prev_kv`), so deletes carry the
//! value the key had. A start revision etcd has compacted away is found before the watch
//! is opened (a read at that revision fails), and a watch that etcd cancels because it fell
//! behind a compaction reports [`StoreError::Compacted`] with etcd's compaction revision.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use calico_datastore::{KeyValue, Operation, Revision, StoreError, Watch, WatchEvent};
use etcd_client::{EventType, GetOptions, WatchOptions, WatchStream};

use crate::{EtcdStore, convert_kv, from_i64, to_i64};

/// An open etcd watch.
pub(crate) struct EtcdWatch {
    /// The private client (its runtime drives the stream).
    client: EtcdStore,
    stream: WatchStream,
    url: String,
    /// The next revision expected.
    next: Revision,
    /// Events received but not yet returned (a response ends mid-revision only when etcd
    /// fragments it).
    pending: VecDeque<WatchEvent>,
    /// When etcd last sent anything on the stream.
    heard: Instant,
    /// When a progress report was asked for and not yet answered.
    asked: Option<Instant>,
    /// The prefix watched.
    prefix: Vec<u8>,
}

/// Silence on the watch stream after which etcd is asked for a progress report.
const ASK_AFTER: Duration = Duration::from_secs(2);
/// How long a progress report may take before the watch counts as dead.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// Whether an etcd error says the revision asked for was compacted.
pub(crate) fn is_compacted(e: &StoreError) -> bool {
    e.to_string()
        .contains("required revision has been compacted")
}

impl EtcdStore {
    /// Opens a watch of `prefix` from `from` (0: from the next change).
    pub(crate) fn open_watch(
        &self,
        prefix: &[u8],
        from: Revision,
    ) -> Result<EtcdWatch, StoreError> {
        let client =
            EtcdStore::connect_to(&self.connection, self.options.clone()).map_err(|e| {
                StoreError::Unavailable {
                    store: self.url.clone(),
                    attempts: 1,
                    elapsed: Duration::ZERO,
                    reason: format!("cannot set up a watch client: {e}"),
                }
            })?;
        // One read through the retrying path: it authenticates the member, fails over like
        // every request, and finds out whether `from` is still in etcd's history.
        let key = prefix.to_vec();
        let at = if from == 0 {
            0
        } else {
            to_i64(&self.url, from)?
        };
        let probe = client.call(Operation::Read, 1, |mut kv| {
            let key = key.clone();
            async move {
                kv.get(
                    key,
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_limit(1)
                            .with_keys_only()
                            .with_revision(at),
                    ),
                )
                .await
            }
        });
        let compacted = match probe {
            Ok(resp) => {
                if from == 0 {
                    let now = resp.header().map_or(0, |h| h.revision());
                    return client.start_stream(prefix, from_i64(&self.url, now)? + 1);
                }
                false
            }
            Err(e) if is_compacted(&e) => true,
            // A future revision: nothing to replay, the watch waits for it.
            Err(e) if e.to_string().contains("future revision") => false,
            Err(e) => return Err(e),
        };
        let mut watch = client.start_stream(prefix, from)?;
        if compacted {
            // etcd cancels the watch and names its compaction revision.
            return match watch.next(self.options.request_timeout) {
                Err(e @ StoreError::Compacted { .. }) => Err(e),
                _ => Err(StoreError::Compacted {
                    store: self.url.clone(),
                    requested: from,
                    available_from: from + 1,
                }),
            };
        }
        Ok(watch)
    }

    /// Starts the watch stream on the current member (already authenticated by a request).
    fn start_stream(self, prefix: &[u8], from: Revision) -> Result<EtcdWatch, StoreError> {
        let url = self.url.clone();
        let member = &self.members[self.current.load(Ordering::Relaxed) % self.members.len()];
        let mut wc = member.client.watch_client();
        let mut options = WatchOptions::new()
            .with_prev_key()
            .with_start_revision(to_i64(&url, from)?);
        options = if prefix.is_empty() {
            options.with_all_keys()
        } else {
            options.with_prefix()
        };
        let timeout = self.options.request_timeout;
        let opened = self.runtime.block_on(async {
            tokio::time::timeout(timeout, wc.watch(prefix.to_vec(), Some(options))).await
        });
        let stream = match opened {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(StoreError::Unavailable {
                    store: url,
                    attempts: 1,
                    elapsed: Duration::ZERO,
                    reason: format!("{}: cannot open a watch: {e}", member.endpoint),
                });
            }
            Err(_) => {
                return Err(StoreError::Timeout {
                    store: url,
                    operation: Operation::Read,
                    after: timeout,
                });
            }
        };
        Ok(EtcdWatch {
            client: self,
            stream,
            url,
            next: from,
            pending: VecDeque::new(),
            heard: Instant::now(),
            asked: None,
            prefix: prefix.to_vec(),
        })
    }
}

impl EtcdWatch {
    fn convert(&self, e: &etcd_client::Event) -> Result<Option<WatchEvent>, StoreError> {
        let Some(kv) = e.kv() else {
            return Ok(None);
        };
        let kv = convert_kv(&self.url, kv)?;
        Ok(Some(match e.event_type() {
            EventType::Put => WatchEvent::Put { kv },
            EventType::Delete => {
                let prev: Option<KeyValue> =
                    e.prev_kv().map(|p| convert_kv(&self.url, p)).transpose()?;
                WatchEvent::Delete {
                    key: kv.key,
                    revision: kv.mod_revision,
                    prev,
                }
            }
        }))
    }

    /// Moves the complete revisions of `pending` out.
    fn take_complete(&mut self, through: Revision) -> Vec<WatchEvent> {
        let mut out = Vec::new();
        while self
            .pending
            .front()
            .is_some_and(|e| e.revision() <= through)
        {
            if let Some(e) = self.pending.pop_front() {
                out.push(e);
            }
        }
        out
    }
}

impl EtcdWatch {
    /// Why the watch is dead, if it is: its connection does not answer one small read
    /// (the prefix's own key, not its range: cheap however many keys the prefix holds).
    fn check_alive(&mut self) -> Option<String> {
        // One read on the watch's own member, within one request timeout: no retries, no
        // fail-over (a stalled connection must show as one).
        let client = &self.client;
        let member = &client.members[client.current.load(Ordering::Relaxed) % client.members.len()];
        let mut kv = member.client.kv_client();
        let key = self.prefix.clone();
        let timeout = client.options.request_timeout;
        let read = client.runtime.block_on(async {
            tokio::time::timeout(
                timeout,
                kv.get(key, Some(GetOptions::new().with_keys_only().with_limit(1))),
            )
            .await
        });
        let why = match read {
            Ok(Ok(_)) => return None,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", timeout.as_secs()),
        };
        Some(format!(
            "the watch stopped answering (no progress report within {} s, and a read failed: {why})",
            ANSWER_WITHIN.as_secs()
        ))
    }
}

impl Watch for EtcdWatch {
    fn next(&mut self, timeout: Duration) -> Result<Vec<WatchEvent>, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            // A stream can go quiet for good without an error (a connection that stalls):
            // after a silence, ask etcd for a progress report; no answer means the watch is
            // dead, and the caller starts another (the syncer re-lists).
            match self.asked {
                Some(at) if at.elapsed() > ANSWER_WITHIN => {
                    // Proxies (etcd grpc-proxy) do not answer progress requests: a read on
                    // the watch's own connection tells whether it is alive instead.
                    if let Some(reason) = self.check_alive() {
                        return Err(StoreError::Unavailable {
                            store: self.url.clone(),
                            attempts: 1,
                            elapsed: self.heard.elapsed(),
                            reason,
                        });
                    }
                    self.heard = Instant::now();
                    self.asked = None;
                }
                None if self.heard.elapsed() > ASK_AFTER => {
                    let stream = &mut self.stream;
                    // A failed request is found out the same way: no answer.
                    let _ = self.client.runtime.block_on(async {
                        tokio::time::timeout(ANSWER_WITHIN, stream.request_progress()).await
                    });
                    self.asked = Some(Instant::now());
                }
                _ => {}
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            let stream = &mut self.stream;
            let got = self
                .client
                .runtime
                .block_on(async { tokio::time::timeout(wait, stream.message()).await });
            if matches!(got, Ok(Ok(Some(_)))) {
                self.heard = Instant::now();
                self.asked = None;
            }
            let resp = match got {
                Err(_) => return Ok(Vec::new()),
                Ok(Ok(Some(resp))) => resp,
                Ok(Ok(None)) => {
                    return Err(StoreError::Unavailable {
                        store: self.url.clone(),
                        attempts: 1,
                        elapsed: Duration::ZERO,
                        reason: "the watch stream ended".to_owned(),
                    });
                }
                Ok(Err(e)) => {
                    return Err(StoreError::Unavailable {
                        store: self.url.clone(),
                        attempts: 1,
                        elapsed: Duration::ZERO,
                        reason: format!("the watch failed: {e}"),
                    });
                }
            };
            if resp.canceled() {
                if resp.compact_revision() > 0 {
                    return Err(StoreError::Compacted {
                        store: self.url.clone(),
                        requested: self.next,
                        available_from: from_i64(&self.url, resp.compact_revision())?,
                    });
                }
                return Err(StoreError::Unavailable {
                    store: self.url.clone(),
                    attempts: 1,
                    elapsed: Duration::ZERO,
                    reason: format!("etcd cancelled the watch: {}", resp.cancel_reason()),
                });
            }
            for e in resp.events() {
                if let Some(ev) = self.convert(e)? {
                    self.pending.push_back(ev);
                }
            }
            // Every revision up to the header's is complete once etcd has sent it.
            let header = resp
                .header()
                .map(|h| from_i64(&self.url, h.revision()))
                .transpose()?
                .unwrap_or(0);
            let last = self.pending.back().map_or(0, WatchEvent::revision);
            let through = header.max(last);
            let out = self.take_complete(through);
            if let Some(e) = out.last() {
                self.next = self.next.max(e.revision() + 1);
            }
            if !out.is_empty() {
                return Ok(out);
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }
}
