"""The FIX session layer of one session: what it sends, and how it answers what it receives.

``SessionLayer`` holds a session's state (its ``FixSessionStore`` of sequence numbers and
sent messages, the socket, the timers, the messages queued behind a gap) and applies the
rules ``session`` lists: Logon, heartbeats and test requests, sequence checks, resend
requests and gap fills, sequence resets, session-level Rejects and Logout. ``FixSession``
puts the public API and the reader thread on top. The sending and receiving methods run
with ``_lock`` held; a violation that ends the connection raises ``Fatal``, which the reader
thread turns into a Logout and a disconnect.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import fields
from typing import Final

from market_intel.adapters.fix._config import (
    FixSessionConfig,
    FixSessionState,
    FixSessionStatistics,
)
from market_intel.adapters.fix._fields import (
    FixMessage,
    format_utc_timestamp,
    new_message,
    text_of,
)
from market_intel.adapters.fix.replay import FixFrame, FixFrameReader
from market_intel.adapters.fix.store import FixSessionStore
from market_intel.errors import FixSessionError

log = logging.getLogger("market_intel.fix")

_ADMIN: Final = frozenset({"0", "1", "2", "3", "4", "5", "A"})
# Header and trailer tags: written by the session, never copied from a message sent or resent.
HEADER: Final = frozenset(
    {b"8", b"9", b"10", b"34", b"35", b"43", b"49", b"52", b"56", b"97", b"122"}
)
# Tags a message must carry at the session level, by MsgType (SendingTime 52 on all).
_REQUIRED: Final = {
    "1": (112,), "2": (7, 16), "3": (45,), "4": (36,), "A": (98, 108),
    "D": (11, 54, 55, 40), "F": (11, 41, 54, 55), "G": (11, 41, 54, 55, 40),
    "8": (37, 17, 39, 54, 55, 14), "V": (262, 263, 264), "W": (268,), "X": (268,),
}  # fmt: skip
# SessionRejectReason (373)
_REQUIRED_TAG_MISSING: Final = 1
_VALUE_INCORRECT: Final = 5
_INCORRECT_FORMAT: Final = 6
_COMP_ID_PROBLEM: Final = 9


class Fatal(Exception):
    """A protocol violation that ends the connection: Logout with ``text`` (if
    ``logout``), then disconnect."""

    def __init__(self, text: str, *, logout: bool = True) -> None:
        super().__init__(text)
        self.logout = logout


class SessionLayer:
    """The session layer of one FIX session, under ``_lock``; ``FixSession`` extends it.

    Args:
        config: The session's settings.

    Raises:
        FixSessionError: The store is open in another session.
    """

    def __init__(self, config: FixSessionConfig) -> None:
        self.config = config
        self.store = FixSessionStore(config.store_path, config.session_id, durable=config.durable)
        self.heartbeat_interval = config.heartbeat_interval
        self.error: FixSessionError | None = None
        """Why the last connection ended abnormally, or None."""
        self.logout_text: str | None = None
        """Text (58) of the last Logout received."""
        self._state = FixSessionState.DISCONNECTED
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._logged_on = threading.Event()
        self._disconnected = threading.Event()
        self._disconnected.set()
        self._delivered: list[FixMessage] = []
        self._counts = dict.fromkeys((f.name for f in fields(FixSessionStatistics)), 0)
        self._reset_connection_state()

    def _reset_connection_state(self) -> None:
        now = time.monotonic()
        self._last_sent = self._last_received = now
        self._test_request: str | None = None
        self._test_request_at = 0.0
        self._queued: dict[int, tuple[FixFrame, bool]] = {}
        self._resend_until: int | None = None
        self._deadline = 0.0
        self._initiator = False

    # Connection: its start and its end

    def _open(self, sock: socket.socket, *, initiator: bool) -> None:
        sock.settimeout(max(self.config.logout_timeout, 1.0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reset_connection_state()
        self._initiator = initiator
        self._sock = sock
        self._state = FixSessionState.LOGGING_ON
        self.error = None
        self.logout_text = None
        self._logged_on.clear()
        self._disconnected.clear()

    def _drop(self, error: FixSessionError | None, sock: socket.socket | None = None) -> None:
        with self._lock:
            current = self._sock
            if current is None or (sock is not None and sock is not current):
                return
            self._sock = None
            self._state = FixSessionState.DISCONNECTED
            if error is not None:
                self.error = error
        with contextlib.suppress(OSError):
            current.shutdown(socket.SHUT_RDWR)
        current.close()
        self._disconnected.set()
        self._logged_on.set()  # wakes a connect() waiting for the Logon

    # Sending (callers hold self._lock)

    def _header(self, msg_type: str, seq: int) -> FixMessage:
        message = new_message(msg_type, self.config.begin_string)
        message.append_pair(49, self.config.sender_comp_id)
        message.append_pair(56, self.config.target_comp_id)
        message.append_pair(34, seq)
        message.append_pair(52, format_utc_timestamp())
        return message

    def _write(self, raw: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise FixSessionError("connection: not connected")
        sock.sendall(raw)
        self._last_sent = time.monotonic()

    def _send_new(self, msg_type: str, body: Sequence[tuple[int, object]]) -> int:
        seq = self.store.next_sender_seq
        message = self._header(msg_type, seq)
        for tag, value in body:
            message.append_pair(tag, value)
        raw = message.encode()
        self.store.record_sent(seq, raw)
        self._write(raw)
        self._counts["messages_sent"] += 1
        return seq

    def _send_admin(self, msg_type: str, body: Sequence[tuple[int, object]]) -> int:
        return self._send_new(msg_type, body)

    def _reject(self, seq: int, msg_type: str, tag: int | None, reason: int, text: str) -> None:
        body: list[tuple[int, object]] = [(45, seq)]
        if tag is not None:
            body.append((371, tag))
        body += [(372, msg_type), (373, reason), (58, text)]
        self._send_admin("3", body)
        self._counts["rejects_sent"] += 1

    def _gap_fill(self, begin: int, new_seq: int) -> None:
        message = self._header("4", begin)
        now = text_of(message, 52)
        message.append_pair(43, "Y")
        message.append_pair(122, now)
        message.append_pair(123, "Y")
        message.append_pair(36, new_seq)
        self._write(message.encode())
        self._counts["gap_fills_sent"] += 1

    def _resend(self, seq: int, stored: FixMessage) -> None:
        msg_type = text_of(stored, 35) or ""
        message = self._header(msg_type, seq)
        message.append_pair(43, "Y")
        message.append_pair(122, text_of(stored, 52) or text_of(message, 52))
        for tag, value in stored.pairs:
            if tag not in HEADER:
                message.append_pair(int(tag), value)
        self._write(message.encode())
        self._counts["messages_resent"] += 1

    # Receiving (callers hold self._lock)

    def _on_timer(self) -> None:
        now = time.monotonic()
        state = self._state
        if state is FixSessionState.LOGGING_ON and now > self._deadline:
            raise Fatal("logon: no Logon before the timeout", logout=False)
        if state is FixSessionState.LOGGING_OUT and now > self._deadline:
            raise Fatal("logout: no Logout answer before the timeout", logout=False)
        if state is not FixSessionState.ACTIVE:
            return
        interval = self.heartbeat_interval
        if now - self._last_sent >= interval:
            self._send_admin("0", [])
            self._counts["heartbeats_sent"] += 1
        if self._test_request is None:
            if now - self._last_received >= interval * 1.2:
                self._counts["test_requests_sent"] += 1
                self._test_request = f"TEST-{self._counts['test_requests_sent']}"
                self._test_request_at = now
                self._send_admin("1", [(112, self._test_request)])
        elif now - self._test_request_at >= interval * 1.2:
            raise Fatal(
                f"heartbeat: no answer to TestRequest {self._test_request!r} within "
                f"{interval * 1.2:g} s; the counterparty is silent",
                logout=False,
            )

    def _on_frame(self, frame: FixFrame) -> None:
        message = frame.message
        self._counts["messages_received"] += 1
        self._last_received = time.monotonic()
        self._test_request = None
        msg_type = frame.msg_type
        seq_text = text_of(message, 34)
        if seq_text is None or not seq_text.isdigit():
            raise Fatal(f"MsgSeqNum(34): {seq_text!r}; expected a sequence number")
        seq = int(seq_text)
        if self._state is FixSessionState.LOGGING_ON:
            if msg_type == "5":
                self.logout_text = text = text_of(message, 58)
                raise Fatal(f"logon: refused by the counterparty: {text!r}", logout=False)
            if msg_type != "A":
                raise Fatal(f"MsgType(35): {msg_type!r}; expected Logon (A) first")
            self._on_logon(frame, seq)
            return
        sender, target = text_of(message, 49), text_of(message, 56)
        if sender != self.config.target_comp_id or target != self.config.sender_comp_id:
            self._reject(seq, msg_type, 49, _COMP_ID_PROBLEM, f"CompID problem: {sender}/{target}")
            raise Fatal(f"SenderCompID(49): {sender!r}; expected {self.config.target_comp_id!r}")
        if msg_type == "4" and text_of(message, 123) != "Y":
            self._sequence_reset(frame, seq, gap_fill=False)
            self._drain()
            return
        expected = self.store.next_target_seq
        if seq > expected:
            early = msg_type in ("2", "5")
            if early:
                self._process(frame, seq, count=False)
            if self._state is FixSessionState.ACTIVE or not early:
                self._queued[seq] = (frame, early)
                self._request_resend(expected, seq)
            return
        if seq < expected:
            if text_of(message, 43) == "Y":
                self._counts["duplicates_ignored"] += 1
                return
            raise Fatal(f"MsgSeqNum too low, expecting {expected} but received {seq}")
        self._process(frame, seq)
        self._drain()

    def _request_resend(self, expected: int, seq: int) -> None:
        if self._resend_until is not None:
            self._resend_until = max(self._resend_until, seq)
            return
        self._resend_until = seq
        end = 0 if self.config.begin_string >= "FIX.4.2" else 999999
        self._send_admin("2", [(7, expected), (16, end)])
        self._counts["resend_requests_sent"] += 1

    def _drain(self) -> None:
        while self._queued and self._sock is not None:
            expected = self.store.next_target_seq
            for stale in [s for s in self._queued if s < expected]:
                del self._queued[stale]
            if expected not in self._queued:
                break
            frame, handled = self._queued.pop(expected)
            if handled or frame.msg_type == "A":
                self.store.set_next_target_seq(expected + 1)
            else:
                self._process(frame, expected)
        if self._resend_until is not None and self.store.next_target_seq > self._resend_until:
            self._resend_until = None

    def _on_logon(self, frame: FixFrame, seq: int) -> None:
        message = frame.message
        reset = text_of(message, 141) == "Y"
        interval = text_of(message, 108)
        if interval is None or not interval.isdigit() or int(interval) < 1:
            raise Fatal(f"HeartBtInt(108): {interval!r}; expected whole seconds >= 1")
        if not self._initiator:
            self.heartbeat_interval = int(interval)
            if reset or self.config.reset_on_logon:
                self.store.reset()
        elif reset and seq == 1:  # the acceptor reset: so do we, on its side
            self.store.set_next_target_seq(1)
        expected = self.store.next_target_seq
        if seq < expected and not reset:
            raise Fatal(f"MsgSeqNum too low, expecting {expected} but received {seq}")
        if not self._initiator:
            body: list[tuple[int, object]] = [(98, 0), (108, self.heartbeat_interval)]
            if reset or self.config.reset_on_logon:
                body.append((141, "Y"))
            if self.config.begin_string == "FIXT.1.1":
                body.append((1137, self.config.default_appl_ver_id))
            self._send_admin("A", body)
        self._state = FixSessionState.ACTIVE
        log.info("%s: logged on, next sender seq %d", self, self.store.next_sender_seq)
        if seq > expected:
            self._queued[seq] = (frame, True)
            self._request_resend(expected, seq)
        else:
            self.store.set_next_target_seq(seq + 1)
            self._drain()
        self._logged_on.set()

    def _missing(self, message: FixMessage, msg_type: str) -> int | None:
        if message.get(52) is None:
            return 52
        if text_of(message, 43) == "Y" and msg_type != "4" and message.get(122) is None:
            return 122
        return next((tag for tag in _REQUIRED.get(msg_type, ()) if message.get(tag) is None), None)

    def _process(self, frame: FixFrame, seq: int, *, count: bool = True) -> None:
        """Handle a message whose number is the one expected (or an early 2 or 5)."""
        message, msg_type = frame.message, frame.msg_type
        missing = self._missing(message, msg_type)
        if missing is not None:
            self._reject(seq, msg_type, missing, _REQUIRED_TAG_MISSING, "Required tag missing")
            if count:
                self.store.set_next_target_seq(seq + 1)
            return
        if msg_type == "4":
            self._sequence_reset(frame, seq, gap_fill=True)
            return
        if count:
            self.store.set_next_target_seq(seq + 1)
        if msg_type == "0":
            return
        if msg_type == "1":
            self._send_admin("0", [(112, text_of(message, 112))])
        elif msg_type == "2":
            self._on_resend_request(frame, seq)
        elif msg_type == "5":
            self.logout_text = text_of(message, 58)
            if self._state is FixSessionState.ACTIVE:
                self._send_admin("5", [])
            self._drop(None)
        elif msg_type == "A":
            return
        else:
            if msg_type == "3":
                self._counts["rejects_received"] += 1
            self._delivered.append(message)

    def _sequence_reset(self, frame: FixFrame, seq: int, *, gap_fill: bool) -> None:
        new_text = text_of(frame.message, 36)
        if new_text is None or not new_text.isdigit():
            self._reject(seq, "4", 36, _INCORRECT_FORMAT, "NewSeqNo(36) is not a number")
            return
        new_seq = int(new_text)
        expected = self.store.next_target_seq
        if new_seq < expected or (gap_fill and new_seq <= seq):
            self._reject(seq, "4", 36, _VALUE_INCORRECT, f"NewSeqNo(36) {new_seq} below {expected}")
            if gap_fill:
                self.store.set_next_target_seq(seq + 1)
            return
        if gap_fill:
            self._counts["gap_fills_received"] += 1
        self.store.set_next_target_seq(new_seq)

    def _on_resend_request(self, frame: FixFrame, seq: int) -> None:
        self._counts["resend_requests_received"] += 1
        begin_text, end_text = text_of(frame.message, 7), text_of(frame.message, 16)
        if not (begin_text and begin_text.isdigit() and end_text and end_text.isdigit()):
            self._reject(seq, "2", 7, _INCORRECT_FORMAT, "BeginSeqNo(7), EndSeqNo(16): not numbers")
            return
        begin, end = int(begin_text), int(end_text)
        last = self.store.next_sender_seq - 1
        if end == 0 or end > last:
            end = last
        if begin < 1 or begin > end:
            return
        reader = FixFrameReader(venue=self.config.sender_comp_id)
        stored = {s: reader.feed(raw) for s, raw in self.store.sent(begin, end)}
        gap_start: int | None = None
        for s in range(begin, end + 1):
            items = stored.get(s, [])
            original = items[0] if len(items) == 1 and isinstance(items[0], FixFrame) else None
            if original is None or original.msg_type in _ADMIN:
                gap_start = s if gap_start is None else gap_start
                continue
            if gap_start is not None:
                self._gap_fill(gap_start, s)
                gap_start = None
            self._resend(s, original.message)
        if gap_start is not None:
            self._gap_fill(gap_start, end + 1)
