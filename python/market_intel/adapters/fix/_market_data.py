"""FIX market data: the MDEntries of W and X messages, and MarketDataRequest (V) with the
snapshot (W) or reject (Y) that answers it.

``md_group`` splits a W or X message into its header fields and one dict per MDEntry (268
group) and checks the count; ``FixConverter`` turns the entries into ``MarketDataEntry``
values and MARKET_DATA messages. The builders and ``parse_market_data_request`` serve both
ends of a subscription: an initiator asks with ``market_data_request``, an acceptor reads
the request and answers with ``market_data_snapshot`` or ``market_data_request_reject``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from market_intel.adapters.fix._fields import (
    FixMessage,
    format_decimal,
    new_message,
    required_text,
    text_of,
)
from market_intel.adapters.normalize import parse_decimal
from market_intel.errors import MalformedFrameError

# MDEntries (268)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketDataEntry:
    """One MDEntry of a W or X message, with exact values.

    Attributes:
        entry_type: MDEntryType (269): ``"0"`` bid, ``"1"`` offer, ``"2"`` trade, ...
        symbol: The normalized symbol.
        price: MDEntryPx (270), or None.
        size: MDEntrySize (271), or None.
        action: MDUpdateAction (279) of an X entry, None in a snapshot.
        entry_id: MDEntryID (278), or None.
        text: Text (58) of the entry, or None.
    """

    entry_type: str
    symbol: str
    price: Decimal | None = None
    size: Decimal | None = None
    action: str | None = None
    entry_id: str | None = None
    text: str | None = None


Fields = dict[bytes, bytes]
"""Some fields of a message by tag, the first value of each."""


def md_group(message: FixMessage, venue: str) -> tuple[Fields, list[Fields]]:
    """Split a W or X message: the fields before NoMDEntries (268), then one dict per entry
    (each entry starts with the group's first tag; the first value of a tag wins)."""
    head: Fields = {}
    entries: list[Fields] = []
    pairs = iter(message.pairs)
    count: bytes | None = None
    for tag, value in pairs:
        if tag == b"268":
            count = value
            break
        head.setdefault(tag, value)
    if count is None:
        return head, entries
    if not count.isdigit():
        raise MalformedFrameError(venue, "NoMDEntries(268)", count, "a count")
    delimiter: bytes | None = None
    for tag, value in pairs:
        if tag == b"10":
            break
        if delimiter is None:
            delimiter = tag
        if tag == delimiter:
            entries.append({})
        entries[-1].setdefault(tag, value)
    if len(entries) != int(count):
        raise MalformedFrameError(
            venue, "NoMDEntries(268)", int(count), f"{len(entries)}, the entries present"
        )
    return head, entries


def entry_decimal(value: bytes | None, venue: str, name: str) -> Decimal | None:
    """Read an entry's price or size exactly, or None when it is absent."""
    return None if value is None else parse_decimal(value, venue=venue, field=name)


def decoded(value: bytes | None) -> str | None:
    """Decode an entry's text field (UTF-8, bad bytes replaced), or None when absent."""
    return None if value is None else value.decode("utf-8", "replace")


# Market data requests (V) and their answers: snapshot (W) or reject (Y)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketDataRequest:
    """A MarketDataRequest (V) as an acceptor reads it.

    Attributes:
        md_req_id: MDReqID (262).
        subscription_type: SubscriptionRequestType (263): ``"0"`` snapshot, ``"1"``
            snapshot and updates, ``"2"`` unsubscribe.
        market_depth: MarketDepth (264): 0 full book, 1 top of book, n levels.
        entry_types: MDEntryTypes asked for (267 group of 269).
        symbols: Symbols asked for (146 group of 55), as sent.
    """

    md_req_id: str
    subscription_type: str
    market_depth: int
    entry_types: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()


def market_data_request(
    *,
    md_req_id: str,
    symbols: Sequence[str],
    entry_types: Sequence[str] = ("0", "1"),
    subscription_type: str = "0",
    market_depth: int = 1,
) -> FixMessage:
    """Build a MarketDataRequest (V) for some symbols and entry types."""
    message = new_message("V")
    message.append_pair(262, md_req_id)
    message.append_pair(263, subscription_type)
    message.append_pair(264, market_depth)
    if subscription_type == "1":
        message.append_pair(265, "1")
    message.append_pair(267, len(entry_types))
    for entry_type in entry_types:
        message.append_pair(269, entry_type)
    message.append_pair(146, len(symbols))
    for symbol in symbols:
        message.append_pair(55, symbol)
    return message


def parse_market_data_request(message: FixMessage, *, venue: str = "fix") -> MarketDataRequest:
    """Read a MarketDataRequest (V).

    Raises:
        MalformedFrameError: MDReqID (262), SubscriptionRequestType (263) or MarketDepth (264)
            is missing, the depth is not a number, or a group count differs from its entries.
    """
    md_req_id = required_text(message, 262, venue, "MDReqID")
    subscription = required_text(message, 263, venue, "SubscriptionRequestType")
    depth = required_text(message, 264, venue, "MarketDepth")
    if not depth.isdigit():
        raise MalformedFrameError(venue, "MarketDepth(264)", depth, "a whole number")
    groups: dict[bytes, list[str]] = {b"269": [], b"55": []}
    for tag, value in message.pairs:
        if tag in groups:
            groups[tag].append(value.decode("utf-8", "replace"))
    for count_tag, tag in ((267, b"269"), (146, b"55")):
        count = text_of(message, count_tag)
        if count is not None and (not count.isdigit() or int(count) != len(groups[tag])):
            raise MalformedFrameError(
                venue, f"({count_tag})", count, f"{len(groups[tag])}, the entries present"
            )
    return MarketDataRequest(
        md_req_id=md_req_id,
        subscription_type=subscription,
        market_depth=int(depth),
        entry_types=tuple(groups[b"269"]),
        symbols=tuple(groups[b"55"]),
    )


def market_data_snapshot(
    *, md_req_id: str, symbol: str, entries: Sequence[MarketDataEntry]
) -> FixMessage:
    """Build a MarketDataSnapshotFullRefresh (W) answering request ``md_req_id``.

    Args:
        md_req_id: MDReqID (262) of the request answered.
        symbol: The symbol (55) as the requester sent it.
        entries: The book's entries; each writes 269, and 270, 271, 278 when set.
    """
    message = new_message("W")
    message.append_pair(262, md_req_id)
    message.append_pair(55, symbol)
    message.append_pair(268, len(entries))
    for entry in entries:
        message.append_pair(269, entry.entry_type)
        if entry.price is not None:
            message.append_pair(270, format_decimal(entry.price))
        if entry.size is not None:
            message.append_pair(271, format_decimal(entry.size))
        if entry.entry_id is not None:
            message.append_pair(278, entry.entry_id)
    return message


def market_data_request_reject(*, md_req_id: str, reason: str, text: str = "") -> FixMessage:
    """Build a MarketDataRequestReject (Y): MDReqRejReason (281) ``reason``, e.g. ``"0"``
    unknown symbol."""
    message = new_message("Y")
    message.append_pair(262, md_req_id)
    message.append_pair(281, reason)
    if text:
        message.append_pair(58, text)
    return message
