//! Typed errors of the nftables wire layer.

/// One message of a batch that the kernel rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// What the message did, e.g. `"add rule"`.
    pub op: &'static str,
    /// The object it named, e.g. `"pol-i-x #3"` (chain and rule index) or a set name.
    pub object: String,
    /// The kernel's errno (positive).
    pub errno: i32,
    /// The kernel's extended-ack message, when it sent one.
    pub message: Option<String>,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = std::io::Error::from_raw_os_error(self.errno);
        write!(f, "{} {}: {e}", self.op, self.object)?;
        if let Some(m) = &self.message {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

/// Why reading the table back failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The netlink socket failed.
    #[error("nftables netlink socket ({context}): {source}")]
    Socket {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The kernel answered a dump with an error.
    #[error("dumping {what} of table {table}: {}", std::io::Error::from_raw_os_error(*errno))]
    Dump {
        /// Object kind dumped.
        what: &'static str,
        /// Table.
        table: String,
        /// Errno.
        errno: i32,
    },
}

/// Why applying a ruleset or delta failed. The kernel transaction is all or nothing: after
/// any of these errors the table holds what it held before.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The netlink socket failed.
    #[error("nftables netlink socket ({context}): {source}")]
    Socket {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The batch is larger than the socket may send in one message.
    #[error("batch of {bytes} bytes exceeds the netlink send buffer ({limit} bytes)")]
    TooLarge {
        /// Batch size.
        bytes: usize,
        /// Send buffer granted by the kernel.
        limit: usize,
    },
    /// The kernel rejected the transaction; nothing was changed.
    #[error("kernel rejected the nftables transaction for table {table}: {first}{}", if *more > 0 { format!(" (and {more} more)") } else { String::new() })]
    Rejected {
        /// Table.
        table: String,
        /// The first rejected message.
        first: Box<Rejection>,
        /// Number of further rejected messages.
        more: usize,
        /// All rejected messages.
        all: Vec<Rejection>,
    },
    /// A delta was given before any ruleset was applied (nothing to apply it to).
    #[error("no ruleset applied yet: apply a whole ruleset before a delta")]
    NoBaseline,
    /// Reading the current state (needed to plan the transaction) failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}
