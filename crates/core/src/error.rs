//! Errors of the core, as small types with messages that name what was wrong.

use thiserror::Error;

/// Every error the core reports.
#[derive(Debug, Error)]
pub enum Error {
    /// A bad argument: names the field, the value and what was expected.
    #[error("{field}: {value} is not valid; expected {expected}")]
    InvalidArgument { field: &'static str, value: String, expected: String },
    /// A non-blocking claim found fewer free slots than asked for.
    #[error("insufficient capacity: asked for {requested} slot(s), {available} free of {capacity}")]
    InsufficientCapacity { requested: i64, available: i64, capacity: i64 },
    /// The ring was shut down; nothing more can be published.
    #[error("ring '{name}' is shut down: nothing can be published after stop()")]
    Closed { name: String },
    /// A wait ran past its timeout.
    #[error("timed out after {waited_ms} ms waiting for sequence {sequence}")]
    Timeout { sequence: i64, waited_ms: u64 },
    /// The waiter was alerted (halt or stop).
    #[error("wait was alerted (processor halted or stopping)")]
    Alerted,
    /// No named segment with that name.
    #[error("no ring segment named '{name}' ({path}); create it first or check the name")]
    NotFound { name: String, path: String },
    /// The named segment exists and is in use by live processes.
    #[error("ring segment '{name}' already exists and is in use by pid {pid}")]
    Exists { name: String, pid: u32 },
    /// The named segment was left by processes that are all dead.
    #[error("ring segment '{name}' is stale: every process that used it (last: pid {pid}) is dead")]
    Stale { name: String, pid: u32 },
    /// The segment's layout differs from what the caller expected.
    #[error("ring segment '{name}': {field} is {found}, expected {expected}")]
    LayoutMismatch { name: String, field: &'static str, found: String, expected: String },
    /// A consumer process died while gating the producer and the policy is to report it.
    #[error("consumer '{consumer}' (pid {pid}) died at sequence {sequence} and gates the producer")]
    ConsumerDied { consumer: String, pid: u32, sequence: i64 },
    /// A consumer that gates the producer halted on a handler failure.
    #[error("consumer '{consumer}' halted on a handler failure at sequence {sequence} and gates the producer; restart or close it")]
    ConsumerFailed { consumer: String, sequence: i64 },
    /// All consumer slots are taken.
    #[error("no free consumer slot: a ring supports at most {max} consumers")]
    TooManyConsumers { max: usize },
    /// A consumer name is unknown.
    #[error("no consumer named '{name}' on this ring")]
    UnknownConsumer { name: String },
    /// A single-producer ring already has a producer.
    #[error("ring '{name}' is single-producer and already has a producer (pid {pid})")]
    ProducerTaken { name: String, pid: u32 },
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result with the core's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
    pub(crate) fn invalid(field: &'static str, value: impl ToString, expected: impl Into<String>) -> Self {
        Error::InvalidArgument { field, value: value.to_string(), expected: expected.into() }
    }
}
