"""Exceptions raised by market-intel.

Every message names the field or object, the value, and what was expected.

The tree::

    MarketIntelError
    ├── InvalidArgumentError (ValueError)      bad capacity, dtype, option, argument
    │   ├── DtypeMismatchError                  array or attach dtype differs from the ring's
    │   ├── RecordError                         missing, extra or invalid record fields
    │   ├── BatchTooLargeError                  a batch larger than the ring
    │   ├── LayoutMismatchError                 attaching to a segment whose layout differs
    │   ├── MessageValidationError              a message or payload field out of its domain
    │   ├── MalformedFrameError                 a venue frame or tick row that cannot be read
    │   └── ConfigError                         configuration violations, all of them at once
    ├── InsufficientCapacity                    try_publish on a full ring
    ├── RingClosedError (RuntimeError)          publishing after shutdown
    ├── WaitTimeoutError (TimeoutError)         a wait or a stop ran past its timeout
    ├── AlertedError                            a wait interrupted by alert() or halt
    ├── SharedMemoryError (OSError)             the operating system refused a mapping
    │   ├── SegmentNotFoundError (FileNotFoundError)
    │   └── SegmentExistsError (FileExistsError)
    │       └── StaleSegmentError               left behind by processes that all died
    ├── ConsumerDiedError                       a gating consumer process died (policy 'raise')
    ├── ConsumerFailedError                     a gating consumer halted on a handler failure
    ├── ProducerConflictError (RuntimeError)    a second producer on a single-producer ring
    ├── TooManyConsumersError                   all consumer slots taken
    ├── HandlerError                            a handler raised and its processor halted;
    │                                           the handler's exception is the __cause__
    ├── EngineError (RuntimeError)              an engine call out of its lifecycle
    │   └── AgentNotFoundError (KeyError)       no agent has that id or name
    ├── FeedError (ConnectionError)             a feed connection failed past its retry budget
    ├── FixSessionError (RuntimeError)          a FIX session broke its protocol or was refused
    ├── JournalError (OSError)                  the journal could not be opened or written
    │   └── JournalCorruptionError              a record failed its checksum before the tail
    └── StorageError (RuntimeError)             the columnar archive or its query failed

MemoryOptionWarning is issued when a memory option (huge pages, mlock) falls back.
"""

from __future__ import annotations

__all__ = [
    "AgentNotFoundError",
    "AlertedError",
    "BatchTooLargeError",
    "ConfigError",
    "ConsumerDiedError",
    "ConsumerFailedError",
    "DtypeMismatchError",
    "EngineError",
    "FeedError",
    "FixSessionError",
    "HandlerError",
    "InsufficientCapacity",
    "InvalidArgumentError",
    "JournalCorruptionError",
    "JournalError",
    "LayoutMismatchError",
    "MalformedFrameError",
    "MarketIntelError",
    "MemoryOptionWarning",
    "MessageValidationError",
    "ProducerConflictError",
    "RecordError",
    "RingClosedError",
    "SegmentExistsError",
    "SegmentNotFoundError",
    "SharedMemoryError",
    "StaleSegmentError",
    "StorageError",
    "TooManyConsumersError",
    "WaitTimeoutError",
]


class MarketIntelError(Exception):
    """Base of every market-intel error."""


class InvalidArgumentError(MarketIntelError, ValueError):
    """An argument or option is not valid."""


class DtypeMismatchError(InvalidArgumentError):
    """A numpy dtype differs from the ring's dtype."""


class RecordError(InvalidArgumentError):
    """A record has missing, extra or invalid fields."""


class BatchTooLargeError(InvalidArgumentError):
    """A batch holds more records than the ring has slots."""


class LayoutMismatchError(InvalidArgumentError):
    """An attached segment's layout differs from what was expected."""


class MessageValidationError(InvalidArgumentError):
    """A message or payload field is outside its domain (the message names field, value and
    what was expected)."""


class MalformedFrameError(InvalidArgumentError):
    """A venue frame, FIX message or tick-file row that cannot be read.

    ``venue``, ``field`` and ``value`` say where; the message says what was expected.
    """

    def __init__(self, venue: str, field: str, value: object, expected: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{venue}: {field}: {shown}; expected {expected}")
        self.venue = venue
        self.field = field
        self.value = value
        self.expected = expected


class ConfigError(InvalidArgumentError):
    """A configuration has violations; ``violations`` lists every one as ``(path, message)``
    and the exception text shows them all, one a line (``core.buffer_size: 1000 is not a
    power of two``)."""

    def __init__(self, violations: list[tuple[str, str]], source: str | None = None) -> None:
        self.violations = list(violations)
        self.source = source
        head = f"{source}: " if source else ""
        lines = [f"{path}: {message}" if path else message for path, message in self.violations]
        n = len(lines)
        super().__init__(
            f"{head}{n} configuration error{'s' if n != 1 else ''}\n  " + "\n  ".join(lines)
        )


class InsufficientCapacity(MarketIntelError):
    """A non-blocking claim found too few free slots."""


class RingClosedError(MarketIntelError, RuntimeError):
    """The ring was shut down; nothing more can be published."""


class WaitTimeoutError(MarketIntelError, TimeoutError):
    """A wait ran past its timeout."""


class AlertedError(MarketIntelError):
    """A wait was interrupted by an alert (halt, stop or close)."""


class SharedMemoryError(MarketIntelError, OSError):
    """The operating system refused a shared-memory or thread operation."""


class SegmentNotFoundError(SharedMemoryError, FileNotFoundError):
    """No shared ring segment has that name."""


class SegmentExistsError(SharedMemoryError, FileExistsError):
    """A shared ring segment of that name exists and is in use."""


class StaleSegmentError(SegmentExistsError):
    """A segment of that name was left by processes that are all dead."""


class ConsumerDiedError(MarketIntelError):
    """A consumer process that gates the producer died."""


class ConsumerFailedError(MarketIntelError):
    """A consumer that gates the producer halted on a handler failure (a blocked producer
    raises this instead of waiting forever)."""


class ProducerConflictError(MarketIntelError, RuntimeError):
    """A single-producer ring got a second producer."""


class TooManyConsumersError(MarketIntelError):
    """Every consumer slot of the ring is taken."""


class HandlerError(MarketIntelError):
    """A handler raised and its processor halted.

    Attributes ``consumer``, ``first_sequence`` and ``last_sequence`` say where; the handler's
    own exception is ``__cause__``.
    """

    consumer: str
    first_sequence: int
    last_sequence: int


class EngineError(MarketIntelError, RuntimeError):
    """An engine or agent call that its lifecycle state does not allow."""


class AgentNotFoundError(EngineError, KeyError):
    """No registered agent has that id or name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FeedError(MarketIntelError, ConnectionError):
    """A feed connection failed and its reconnect budget is spent."""


class FixSessionError(MarketIntelError, RuntimeError):
    """A FIX session broke its protocol (logon refused, sequence too low, garbled message)."""


class JournalError(MarketIntelError, OSError):
    """The journal could not be opened, locked or written."""


class JournalCorruptionError(JournalError):
    """A journal record failed its checksum somewhere other than the torn tail."""


class StorageError(MarketIntelError, RuntimeError):
    """The columnar archive could not be written or queried."""


class MemoryOptionWarning(UserWarning):
    """A memory option (huge pages, mlock) could not be applied and fell back."""
