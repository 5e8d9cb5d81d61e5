"""The enumerations of messages and agents. Each value fits in one byte of a record."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AgentStatus",
    "AgentType",
    "Liquidity",
    "MarketDataKind",
    "MessageType",
    "OrderStatus",
    "OrderType",
    "Priority",
    "Severity",
    "Side",
    "TimeInForce",
]


class MessageType(IntEnum):
    """What a message is about; agents are routed the types they handle."""

    MARKET_DATA = 1
    ORDER = 2
    TRADE = 3
    EVENT = 4
    CONTROL = 5
    HEALTH = 6
    ANALYTICS = 7


class Priority(IntEnum):
    """Delivery priority: CRITICAL and HIGH messages overtake NORMAL and LOW ones."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


class MarketDataKind(IntEnum):
    """What a market data message carries."""

    QUOTE = 1
    """Top of book: bid, ask and their sizes."""
    TRADE = 2
    """A public trade: last price and size."""
    DEPTH = 3
    """A book update; bid and ask are the best levels the update touches."""
    SNAPSHOT = 4
    """A book snapshot; bid and ask are its best levels."""


class Side(IntEnum):
    """Order or trade side."""

    BUY = 1
    SELL = 2


class OrderType(IntEnum):
    """Order type."""

    MARKET = 1
    LIMIT = 2
    STOP = 3
    STOP_LIMIT = 4


class TimeInForce(IntEnum):
    """How long an order stays working."""

    GTC = 1
    IOC = 2
    FOK = 3
    DAY = 4


class OrderStatus(IntEnum):
    """Where an order is in its life."""

    NEW = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELED = 4
    REJECTED = 5
    PENDING_NEW = 6
    PENDING_CANCEL = 7
    PENDING_REPLACE = 8


class Liquidity(IntEnum):
    """Whether a fill added or took liquidity."""

    UNKNOWN = 0
    MAKER = 1
    TAKER = 2


class Severity(IntEnum):
    """Severity of an event."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50


class AgentStatus(IntEnum):
    """An agent's lifecycle state."""

    STARTING = 1
    RUNNING = 2
    DEGRADED = 3
    STOPPED = 4
    FAILED = 5


class AgentType(IntEnum):
    """The role of an agent."""

    MARKET_DATA = 1
    TRADING = 2
    RISK = 3
    ANALYTICS = 4
    STORAGE = 5
    MONITORING = 6
    CUSTOM = 7
