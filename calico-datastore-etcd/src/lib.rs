//! `calico-datastore-etcd`: the `etcd://` backend of [`calico_datastore`].
//!
//! [`EtcdStore`] implements the synchronous [`Store`] trait over etcd v3 (the `etcd-client`
//! crate). It owns one tokio current-thread runtime, so callers (and the pure crates above
//! them) see no async code. It lives in its own crate so that `calico-datastore` and the
//! allocator stay free of tokio.
//!
//! Mapping: a read batch is one etcd `Txn` with no compares whose success branch holds one
//! range request per read (so every result is read at the header revision, linearizably);
//! a transaction is one etcd `Txn` whose compares are `mod_revision == r` or
//! `create_revision == 0` (absent), whose success branch holds the puts and deletes, and
//! whose failure branch reads the compared keys (keys only), so a conflict reports the
//! current revisions without another round trip.
//!
//! Fail-over and retries: the client keeps one lazily connected channel per member and
//! sends each request to the current member. A request that certainly did not reach etcd
//! (connection refused, no leader) moves to the next member and is retried after an
//! exponential backoff with full jitter (base 2 ms, cap 250 ms) until the deadline (30 s
//! by default); reads are also retried after timeouts and broken connections. A transaction
//! whose connection broke after it was sent, or that timed out, is **not** repeated: it
//! fails with [`StoreError::Indeterminate`] or [`StoreError::Timeout`], because it may have
//! been applied (the caller re-reads and decides, as etcd's own Go client requires).
//!
//! Watches: etcd's native watch with previous values, on a client of the watch's own (see
//! [`Store::watch`]); a start revision etcd has compacted is reported as
//! [`StoreError::Compacted`] with etcd's compaction revision. [`Store::compact`] is etcd's
//! compaction.
//!
//! Security: [`EtcdStore::connect_to`] takes an [`EtcdConnection`] (usually from
//! [`calico_datastore::resolve_datastore`], opened with [`open_target`]). `https` members
//! are reached over TLS (tonic with rustls and the ring provider, the only TLS stack in the
//! build), verified with the configured CA (else the system's CA bundle), presenting the
//! client certificate when one is configured; the CA and certificate files are read when
//! the store is built, so a missing file is an error at once. With credentials, each member
//! is asked for a token by the first request sent to it (etcd's simple tokens are valid
//! only on the member that issued them); when a token expires the client authenticates
//! again and repeats the request once. Failures that repeating cannot fix — a TLS handshake
//! that fails (untrusted, expired or missing certificate), a wrong password, a missing user
//! name, a permission the user lacks — are not retried: they come back at once as
//! [`StoreError::Access`], naming the member and the cause, e.g.
//! `etcd https://127.0.0.1:2379: TLS handshake failed: certificate expired: ...`.
//!
//! ```no_run
//! let store = calico_datastore_etcd::open_store("etcd://127.0.0.1:2379,127.0.0.1:22379")?;
//! store.put(b"k", b"v")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use calico_datastore::{
    Backoff, BackoffPolicy, Compare, DEFAULT_MAX_TXN_OPS, DatastoreTarget, EtcdConnection,
    EtcdCredentials, EtcdMember, EtcdScheme, KeyValue, OpenError, Operation, RangeResult, ReadOp,
    ReadResponse, ReadResult, Revision, Store, StoreError, StoreUrl, TxnOp, TxnResponse,
    check_reads, check_txn, failed_compares,
};
use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, GetOptions, KvClient, SortOrder,
    SortTarget, Txn as EtcdTxn, TxnOp as EtcdTxnOp, TxnOpResponse,
};
use tokio::runtime::Runtime;

mod refusal;

/// The etcd server program, if installed: `CALICO_ETCD_BIN`, else `etcd` on `PATH`, else
/// `/usr/bin/etcd` (where Debian's `etcd-server` puts it). For tools that start their own
/// etcd (the test harnesses, the demo, the benchmarks).
pub fn etcd_binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("CALICO_ETCD_BIN") {
        let p = std::path::PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("etcd");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let p = std::path::PathBuf::from("/usr/bin/etcd");
    p.is_file().then_some(p)
}
mod tls;
mod watch;

use refusal::{Presented, Refusal, refusal};

#[cfg(feature = "testkit")]
pub mod testkit;

/// Connection and retry settings of an [`EtcdStore`].
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Time limit of one request to one member.
    pub request_timeout: Duration,
    /// Time limit for establishing a connection to one member.
    pub connect_timeout: Duration,
    /// Backoff between retries while the cluster is unavailable; its `deadline` bounds the
    /// total time of one operation.
    pub backoff: BackoffPolicy,
    /// The server's `--max-txn-ops` (default 128).
    pub max_txn_ops: usize,
    /// The largest response accepted (range reads of many blocks can be large).
    pub max_response_bytes: usize,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            backoff: BackoffPolicy {
                max_retries: u32::MAX,
                ..BackoffPolicy::DEFAULT
            },
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            max_response_bytes: 256 << 20,
        }
    }
}

struct Member {
    endpoint: String,
    client: Client,
    kv: KvClient,
    /// Whether this member issued us a token (etcd's simple tokens are per member).
    authenticated: AtomicBool,
}

/// Counters of an [`EtcdStore`] since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EtcdStats {
    /// Requests sent (first attempts and retries).
    pub attempts: u64,
    /// Attempts that failed transiently and were retried.
    pub retries: u64,
    /// Transactions answered with an unknown outcome (`Indeterminate` or `Timeout`).
    pub unknown_outcomes: u64,
}

/// A [`Store`] on an etcd v3 cluster.
pub struct EtcdStore {
    url: String,
    /// What it was built from (watches build their own client from it).
    connection: EtcdConnection,
    members: Vec<Member>,
    credentials: Option<EtcdCredentials>,
    client_cert: bool,
    client_validity: Option<calico_datastore::CertValidity>,
    current: AtomicUsize,
    options: EtcdOptions,
    seed: AtomicU64,
    attempts: AtomicU64,
    retries: AtomicU64,
    unknown_outcomes: AtomicU64,
    // Declared last: dropped after the clients whose tasks it runs.
    runtime: Runtime,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("url", &self.url)
            .field("current", &self.current.load(Ordering::Relaxed))
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Opens any store URL: `etcd://` here, `memory:` and `file:` through
/// [`calico_datastore::open_local`].
pub fn open_store(url: &str) -> Result<Box<dyn Store>, OpenError> {
    open_store_with(url, EtcdOptions::default())
}

/// As [`open_store`], with `options` for an `etcd://` URL.
pub fn open_store_with(url: &str, options: EtcdOptions) -> Result<Box<dyn Store>, OpenError> {
    match StoreUrl::parse(url)? {
        StoreUrl::Etcd(members) => Ok(Box::new(EtcdStore::connect(&members, options)?)),
        other => calico_datastore::open_local(&other),
    }
}

/// Opens a resolved datastore ([`calico_datastore::resolve_datastore`]): etcd with its TLS
/// material and credentials here, `memory:` and `file:` through
/// [`calico_datastore::open_local`].
pub fn open_target(
    target: &DatastoreTarget,
    options: EtcdOptions,
) -> Result<Box<dyn Store>, OpenError> {
    match target {
        DatastoreTarget::Etcd(connection) => {
            Ok(Box::new(EtcdStore::connect_to(connection, options)?))
        }
        DatastoreTarget::Memory => calico_datastore::open_local(&StoreUrl::Memory),
        DatastoreTarget::File(path) => calico_datastore::open_local(&StoreUrl::File(path.clone())),
    }
}

impl EtcdOptions {
    /// The options with every operation bounded by `limit` in total (retries included),
    /// and each connection attempt by at most `limit`: for tools that should report an
    /// unreachable cluster promptly rather than wait out the default 30 s deadline.
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.backoff.deadline = limit;
        self.connect_timeout = self.connect_timeout.min(limit);
        self.request_timeout = self
            .request_timeout
            .min(limit.max(Duration::from_millis(1)));
        self
    }
}

/// What became of one attempt.
enum Step<T> {
    /// The member answered the request (with a result or an error).
    Answered(Result<T, etcd_client::Error>),
    /// The request got no answer in time.
    TimedOut,
    /// Asking the member for a token failed; the request was not sent.
    AuthFailed(etcd_client::Error),
    /// The member did not answer the authentication in time; the request was not sent.
    AuthTimedOut,
}

/// How a failed attempt may be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The request certainly did not take effect (not sent, refused before processing).
    NotApplied,
    /// The request was sent and its fate is unknown (connection broken, leader lost).
    Unknown,
    /// No answer within the request timeout.
    TimedOut,
}

enum Attempt {
    Retry(Failure, String),
    Fatal(StoreError),
}

impl EtcdStore {
    /// Builds a client for plain `http` `members` (tried in order, failing over to the
    /// next). Nothing is contacted yet: connections are made by the first request.
    pub fn connect(members: &[EtcdMember], options: EtcdOptions) -> Result<Self, OpenError> {
        Self::connect_to(&EtcdConnection::plain(members), options)
    }

    /// Builds a client for `connection`: its endpoints (tried in order), TLS for the
    /// `https` ones (the CA and client certificate files are read now), and its
    /// credentials (each member is asked for a token by the first request sent to it).
    /// Nothing is contacted yet.
    pub fn connect_to(
        connection: &EtcdConnection,
        options: EtcdOptions,
    ) -> Result<Self, OpenError> {
        let url = connection.to_string();
        let fail = |reason: String| OpenError::Backend {
            url: url.clone(),
            reason,
        };
        if connection.endpoints.is_empty() {
            return Err(fail("no etcd member given".to_owned()));
        }
        let (tls, client_validity) = if connection
            .endpoints
            .iter()
            .any(|e| e.scheme == EtcdScheme::Https)
        {
            let (config, validity) =
                tls::client_config(&connection.tls, options.connect_timeout).map_err(&fail)?;
            (Some(config), validity)
        } else {
            (None, None)
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| fail(format!("cannot start the I/O runtime: {e}")))?;
        let mut clients = Vec::with_capacity(connection.endpoints.len());
        for e in &connection.endpoints {
            let endpoint = e.to_string();
            let channel = {
                let _guard = runtime.enter();
                let mut builder = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .map_err(|e| fail(format!("bad endpoint {endpoint}: {e}")))?
                    .connect_timeout(options.connect_timeout)
                    .timeout(options.request_timeout)
                    .tcp_nodelay(true);
                if let (EtcdScheme::Https, Some(tls)) = (e.scheme, &tls) {
                    builder = builder.tls_config(tls.clone()).map_err(|err| {
                        fail(format!(
                            "TLS set-up for {endpoint}: {}",
                            refusal::chain(&err)
                        ))
                    })?;
                }
                builder.connect_lazy()
            };
            // Without credentials here: `from_channel` would authenticate at once, and
            // members are contacted only by requests (see `EtcdStore::call`).
            let client = runtime
                .block_on(Client::from_channel(
                    etcd_client::Channel::Tonic(channel),
                    Some(
                        ConnectOptions::new()
                            .with_require_leader(true)
                            .with_auto_token_refresh(true),
                    ),
                ))
                .map_err(|e| fail(format!("cannot set up the client for {endpoint}: {e}")))?;
            clients.push(Member {
                endpoint,
                kv: client
                    .kv_client()
                    .max_decoding_message_size(options.max_response_bytes),
                client,
                authenticated: AtomicBool::new(false),
            });
        }
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        Ok(EtcdStore {
            url,
            connection: connection.clone(),
            members: clients,
            credentials: connection.credentials.clone(),
            client_cert: connection.tls.client.is_some(),
            client_validity,
            current: AtomicUsize::new(0),
            options,
            seed: AtomicU64::new(seed),
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            unknown_outcomes: AtomicU64::new(0),
            runtime,
        })
    }

    /// The endpoint requests currently go to.
    pub fn current_endpoint(&self) -> &str {
        let i = self.current.load(Ordering::Relaxed) % self.members.len();
        &self.members[i].endpoint
    }

    /// The counters so far.
    pub fn stats(&self) -> EtcdStats {
        EtcdStats {
            attempts: self.attempts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            unknown_outcomes: self.unknown_outcomes.load(Ordering::Relaxed),
        }
    }

    /// Runs one request with fail-over and retries: `call` builds the request future for a
    /// member's client.
    /// `size` is the request's largest count of compares, ops or reads (for errors).
    fn call<T, F, Fut>(&self, operation: Operation, size: usize, call: F) -> Result<T, StoreError>
    where
        F: Fn(KvClient) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call_client(operation, size, |client| call(client.kv.clone()))
    }

    /// As [`EtcdStore::call`], with the member's whole client (for the lease API).
    fn call_client<T, F, Fut>(
        &self,
        operation: Operation,
        size: usize,
        call: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(&Member) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = Instant::now();
        let seed = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        let mut backoff = Backoff::new(self.options.backoff, seed);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let index = self.current.load(Ordering::Relaxed) % self.members.len();
            let member = &self.members[index];
            let timeout = self.options.request_timeout;
            let outcome = self.runtime.block_on(async {
                if let Some(creds) = &self.credentials
                    && !member.authenticated.load(Ordering::Relaxed)
                {
                    let mut client = member.client.clone();
                    let user = Some((creds.username.clone(), creds.password.clone()));
                    match tokio::time::timeout(timeout, client.update_user(user)).await {
                        Ok(Ok(())) => member.authenticated.store(true, Ordering::Relaxed),
                        Ok(Err(e)) => return Step::AuthFailed(e),
                        Err(_) => return Step::AuthTimedOut,
                    }
                }
                match tokio::time::timeout(timeout, call(member)).await {
                    Ok(r) => Step::Answered(r),
                    Err(_) => Step::TimedOut,
                }
            });
            let (failure, reason) = match outcome {
                Step::Answered(Ok(v)) => return Ok(v),
                Step::Answered(Err(e)) => match self.classify(&e, size, &member.endpoint) {
                    Attempt::Fatal(err) => return Err(err),
                    Attempt::Retry(f, reason) => (f, format!("{}: {reason}", member.endpoint)),
                },
                Step::TimedOut => (
                    Failure::TimedOut,
                    format!("{}: no answer within {timeout:?}", member.endpoint),
                ),
                // Authentication comes before the request: whatever happened to it, the
                // request itself was not sent.
                Step::AuthFailed(e) => match self.classify(&e, size, &member.endpoint) {
                    Attempt::Fatal(err) => return Err(err),
                    Attempt::Retry(_, reason) => (
                        Failure::NotApplied,
                        format!("{}: authenticating: {reason}", member.endpoint),
                    ),
                },
                Step::AuthTimedOut => (
                    Failure::NotApplied,
                    format!(
                        "{}: no answer to the authentication within {timeout:?}",
                        member.endpoint
                    ),
                ),
            };
            if operation == Operation::Txn && failure != Failure::NotApplied {
                self.unknown_outcomes.fetch_add(1, Ordering::Relaxed);
            }
            if operation == Operation::Txn {
                match failure {
                    Failure::NotApplied => {}
                    Failure::Unknown => {
                        return Err(StoreError::Indeterminate {
                            store: self.url.clone(),
                            reason,
                        });
                    }
                    Failure::TimedOut => {
                        return Err(StoreError::Timeout {
                            store: self.url.clone(),
                            operation,
                            after: timeout,
                        });
                    }
                }
            }
            // Fail over: the next request goes to the next member (unless another thread
            // already moved on).
            let _ = self.current.compare_exchange(
                index,
                (index + 1) % self.members.len(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            match backoff.next_delay(started.elapsed()) {
                Some(wait) => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(wait);
                }
                None if failure == Failure::TimedOut => {
                    return Err(StoreError::Timeout {
                        store: self.url.clone(),
                        operation,
                        after: started.elapsed(),
                    });
                }
                None => {
                    return Err(StoreError::Unavailable {
                        store: self.url.clone(),
                        attempts,
                        elapsed: started.elapsed(),
                        reason,
                    });
                }
            }
        }
    }

    fn classify(&self, e: &etcd_client::Error, size: usize, endpoint: &str) -> Attempt {
        use tonic::Code;
        let refused = |r: Refusal| {
            Attempt::Fatal(StoreError::Access {
                store: self.url.clone(),
                endpoint: endpoint.to_owned(),
                reason: r.to_string().into(),
            })
        };
        let presented = Presented {
            user: self.credentials.as_ref().map(|c| c.username.as_str()),
            client_cert: self.client_cert,
            client_validity: self.client_validity,
            now: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        };
        let status = match e {
            etcd_client::Error::GRpcStatus(s) => s,
            etcd_client::Error::TransportError(t) => {
                let text = refusal::chain(t);
                if let Some(r) = refusal(None, &text, presented) {
                    return refused(r);
                }
                return Attempt::Retry(Failure::NotApplied, format!("transport error: {text}"));
            }
            other => {
                return Attempt::Fatal(StoreError::backend(
                    self.url.clone(),
                    "etcd client error",
                    other.to_string(),
                ));
            }
        };
        let message = status.message();
        let text = format!(
            "{}: {}{}",
            code_name(status.code()),
            message,
            source_chain(status)
        );
        let lower = text.to_ascii_lowercase();
        if let Some(r) = refusal(Some(status.code()), &text, presented) {
            return refused(r);
        }
        match status.code() {
            Code::Unavailable | Code::Unknown | Code::Internal => {
                if never_sent(&lower) {
                    Attempt::Retry(Failure::NotApplied, text)
                } else {
                    Attempt::Retry(Failure::Unknown, text)
                }
            }
            Code::DeadlineExceeded | Code::Cancelled => Attempt::Retry(Failure::TimedOut, text),
            Code::ResourceExhausted if lower.contains("too many requests") => {
                Attempt::Retry(Failure::NotApplied, text)
            }
            Code::InvalidArgument if lower.contains("too many operations") => {
                // The server's --max-txn-ops is below the configured `max_txn_ops`.
                Attempt::Fatal(StoreError::TooManyOps {
                    store: self.url.clone(),
                    what: "operations (the server's --max-txn-ops is lower than configured)",
                    count: size,
                    max: self.options.max_txn_ops,
                })
            }
            Code::InvalidArgument => Attempt::Fatal(StoreError::InvalidRequest {
                store: self.url.clone(),
                reason: text,
            }),
            _ => Attempt::Fatal(StoreError::backend(self.url.clone(), "etcd error", text)),
        }
    }
}

/// Whether an error text says the request never reached (or was refused by) the server
/// before any processing: connection establishment failures, a refused stream, no leader.
fn never_sent(lower: &str) -> bool {
    [
        "error trying to connect",
        "tcp connect error",
        "connection refused",
        "connect error",
        "dns error",
        "refused_stream",
        "refused stream",
        "etcdserver: no leader",
        "not capable",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}

fn source_chain(status: &tonic::Status) -> String {
    let mut out = String::new();
    let mut cur = std::error::Error::source(status);
    while let Some(e) = cur {
        out.push_str(" <- ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// etcd's "lease not found" as [`StoreError::LeaseNotFound`].
fn lease_error(e: StoreError, url: &str, lease: calico_datastore::LeaseId) -> StoreError {
    if e.to_string().contains("lease not found") {
        StoreError::LeaseNotFound {
            store: url.to_owned(),
            lease,
        }
    } else {
        e
    }
}

fn to_i64(url: &str, r: Revision) -> Result<i64, StoreError> {
    i64::try_from(r).map_err(|_| StoreError::InvalidRequest {
        store: url.to_owned(),
        reason: format!("revision {r} is out of etcd's range"),
    })
}

fn from_i64(url: &str, r: i64) -> Result<Revision, StoreError> {
    u64::try_from(r).map_err(|_| {
        StoreError::backend(url, "decoding a response", format!("negative revision {r}"))
    })
}

fn convert_kv(url: &str, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    Ok(KeyValue {
        key: kv.key().to_vec(),
        value: kv.value().to_vec(),
        create_revision: from_i64(url, kv.create_revision())?,
        mod_revision: from_i64(url, kv.mod_revision())?,
    })
}

fn header_revision(
    url: &str,
    header: Option<&etcd_client::ResponseHeader>,
) -> Result<Revision, StoreError> {
    let header = header.ok_or_else(|| {
        StoreError::backend(url, "decoding a response", "response without a header")
    })?;
    from_i64(url, header.revision())
}

fn range_op(start: &[u8], end: Option<&[u8]>, limit: usize, keys_only: bool) -> EtcdTxnOp {
    // etcd rejects the empty key; "\0" is the smallest key there is.
    let key = if start.is_empty() {
        vec![0]
    } else {
        start.to_vec()
    };
    let opts = GetOptions::new().with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
    let opts = if keys_only {
        opts.with_keys_only()
    } else {
        opts
    };
    let opts = match end {
        Some(end) => opts.with_range(end.to_vec()),
        None => opts.with_from_key(),
    };
    EtcdTxnOp::get(key, Some(opts))
}

impl Store for EtcdStore {
    fn url(&self) -> &str {
        &self.url
    }

    fn max_txn_ops(&self) -> usize {
        self.options.max_txn_ops
    }

    fn watch(
        &self,
        prefix: &[u8],
        from: Revision,
    ) -> Result<Box<dyn calico_datastore::Watch>, StoreError> {
        Ok(Box::new(self.open_watch(prefix, from)?))
    }

    fn grant_lease(&self, ttl: Duration) -> Result<calico_datastore::LeaseId, StoreError> {
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        // Repeating a grant after an unknown outcome at worst leaves a lease nobody uses,
        // which expires on its own.
        let resp = self.call_client(Operation::Read, 1, |m| {
            let mut c = m.client.clone();
            async move { c.lease_grant(secs, None).await }
        })?;
        Ok(resp.id())
    }

    fn keep_alive(&self, lease: calico_datastore::LeaseId) -> Result<Duration, StoreError> {
        let ttl = self
            .call_client(Operation::Read, 1, |m| {
                let mut c = m.client.clone();
                async move {
                    let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
                    keeper.keep_alive().await?;
                    Ok(stream.message().await?.map_or(0, |r| r.ttl()))
                }
            })
            .map_err(|e| lease_error(e, &self.url, lease))?;
        if ttl <= 0 {
            return Err(StoreError::LeaseNotFound {
                store: self.url.clone(),
                lease,
            });
        }
        Ok(Duration::from_secs(ttl.unsigned_abs()))
    }

    fn revoke_lease(&self, lease: calico_datastore::LeaseId) -> Result<(), StoreError> {
        self.call_client(Operation::Read, 1, |m| {
            let mut c = m.client.clone();
            async move { c.lease_revoke(lease).await }
        })
        .map(drop)
        .map_err(|e| lease_error(e, &self.url, lease))
    }

    fn put_with_lease(
        &self,
        key: &[u8],
        value: &[u8],
        lease: calico_datastore::LeaseId,
    ) -> Result<Revision, StoreError> {
        check_txn(
            &self.url,
            &[],
            &[TxnOp::put(key, value)],
            self.options.max_txn_ops,
        )?;
        let resp = self
            .call(Operation::Txn, 1, |mut kv| {
                let (key, value) = (key.to_vec(), value.to_vec());
                async move {
                    kv.put(
                        key,
                        value,
                        Some(etcd_client::PutOptions::new().with_lease(lease)),
                    )
                    .await
                }
            })
            .map_err(|e| lease_error(e, &self.url, lease))?;
        let revision = resp.header().map_or(0, |h| h.revision());
        from_i64(&self.url, revision)
    }

    fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let rev = to_i64(&self.url, revision)?;
        self.call(Operation::Read, 1, |mut kv| async move {
            kv.compact(rev, None).await
        })
        .map(drop)
    }

    fn read(&self, reads: &[ReadOp]) -> Result<ReadResponse, StoreError> {
        check_reads(&self.url, reads, self.options.max_txn_ops)?;
        let ops: Vec<EtcdTxnOp> = reads
            .iter()
            .map(|r| match r {
                ReadOp::Get { key } => EtcdTxnOp::get(key.clone(), None),
                ReadOp::Range { start, end, limit } => {
                    range_op(start, end.as_deref(), *limit, false)
                }
                ReadOp::Keys { start, end, limit } => range_op(start, end.as_deref(), *limit, true),
            })
            .collect();
        let txn = EtcdTxn::new().and_then(ops);
        let resp = self.call(Operation::Read, reads.len(), |mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })?;
        let revision = header_revision(&self.url, resp.header())?;
        let responses = resp.op_responses();
        if responses.len() != reads.len() {
            return Err(StoreError::backend(
                self.url.clone(),
                "decoding a read",
                format!("{} answers to {} reads", responses.len(), reads.len()),
            ));
        }
        let mut results = Vec::with_capacity(reads.len());
        for (read, answer) in reads.iter().zip(responses) {
            let TxnOpResponse::Get(get) = answer else {
                return Err(StoreError::backend(
                    self.url.clone(),
                    "decoding a read",
                    "a range request got another kind of answer",
                ));
            };
            let kvs = get
                .kvs()
                .iter()
                .map(|kv| convert_kv(&self.url, kv))
                .collect::<Result<Vec<_>, _>>()?;
            results.push(match read {
                ReadOp::Get { .. } => ReadResult::Get(kvs.into_iter().next()),
                ReadOp::Range { .. } | ReadOp::Keys { .. } => ReadResult::Range(RangeResult {
                    kvs,
                    more: get.more(),
                }),
            });
        }
        Ok(ReadResponse { revision, results })
    }

    fn txn(&self, compares: &[Compare], ops: &[TxnOp]) -> Result<TxnResponse, StoreError> {
        check_txn(&self.url, compares, ops, self.options.max_txn_ops)?;
        let mut when = Vec::with_capacity(compares.len());
        // What the failure branch reads back: each compared key, and for each compared
        // range its most recently modified key.
        let mut compared: Vec<Compared<'_>> = Vec::with_capacity(compares.len());
        for c in compares {
            when.push(match c {
                Compare::ModRevision { key, revision } => EtcdCompare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    to_i64(&self.url, *revision)?,
                ),
                Compare::Absent { key } => {
                    EtcdCompare::create_revision(key.clone(), CompareOp::Equal, 0)
                }
                Compare::RangeUnmodified {
                    start,
                    end,
                    revision,
                } => EtcdCompare::mod_revision(
                    start.clone(),
                    CompareOp::Less,
                    to_i64(&self.url, revision.saturating_add(1))?,
                )
                .with_range(end.clone().unwrap_or_else(|| vec![0])),
            });
            let item = (c.key(), c.range_end());
            if !compared.contains(&item) {
                compared.push(item);
            }
        }
        let then: Vec<EtcdTxnOp> = ops
            .iter()
            .map(|op| match op {
                TxnOp::Put { key, value } => EtcdTxnOp::put(key.clone(), value.clone(), None),
                TxnOp::Delete { key } => EtcdTxnOp::delete(key.clone(), None),
            })
            .collect();
        let otherwise: Vec<EtcdTxnOp> = compared
            .iter()
            .map(|(k, end)| match end {
                None => EtcdTxnOp::get(k.to_vec(), Some(GetOptions::new().with_keys_only())),
                Some(end) => EtcdTxnOp::get(
                    k.to_vec(),
                    Some(
                        GetOptions::new()
                            .with_keys_only()
                            .with_range(end.map_or_else(|| vec![0], <[u8]>::to_vec))
                            .with_sort(SortTarget::Mod, SortOrder::Descend)
                            .with_limit(1),
                    ),
                ),
            })
            .collect();
        let txn = EtcdTxn::new().when(when).and_then(then).or_else(otherwise);
        let resp = self.call(Operation::Txn, compares.len().max(ops.len()), |mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })?;
        let revision = header_revision(&self.url, resp.header())?;
        if resp.succeeded() {
            return Ok(TxnResponse { revision });
        }
        let mut current: HashMap<Compared<'_>, Option<Revision>> = HashMap::new();
        for (item, answer) in compared.iter().zip(resp.op_responses()) {
            if let TxnOpResponse::Get(get) = answer {
                let rev = match get.kvs().first() {
                    Some(kv) => Some(from_i64(&self.url, kv.mod_revision())?),
                    None => None,
                };
                current.insert(*item, rev);
            }
        }
        let key_rev = |k: &[u8]| current.get(&(k, None)).copied().flatten();
        let range_rev = |k: &[u8], e: Option<&[u8]>| current.get(&(k, Some(e))).copied().flatten();
        match failed_compares(compares, revision, key_rev, range_rev) {
            Some(conflict) => Err(StoreError::Conflict {
                store: self.url.clone(),
                conflict,
            }),
            None => Err(StoreError::backend(
                self.url.clone(),
                "decoding a failed transaction",
                "etcd reported a failed compare but every compared key matches",
            )),
        }
    }
}

/// What a compare looked at: a key, or (start, `Some(end)`) a range.
type Compared<'a> = (&'a [u8], Option<Option<&'a [u8]>>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_count_as_not_sent_and_broken_streams_as_unknown() {
        for text in [
            "Unavailable: tcp connect error <- Connection refused (os error 111)",
            "Unavailable: etcdserver: no leader",
            "Unknown: h2 protocol error: refused_stream",
        ] {
            assert!(never_sent(&text.to_ascii_lowercase()), "{text}");
        }
        for text in [
            "Unknown: transport error <- connection error <- connection reset",
            "Unavailable: etcdserver: leader changed",
            "Unavailable: etcdserver: request timed out",
        ] {
            assert!(!never_sent(&text.to_ascii_lowercase()), "{text}");
        }
    }
}
