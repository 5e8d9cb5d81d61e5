"""FIX 4.x sessions over TCP: ``FixSession`` (an initiator, or one session of an acceptor)
and ``FixAcceptor``.

Blocking calls and one reader thread per connection, so a plain threaded program uses it
as is (an asyncio program calls it through ``asyncio.to_thread``)::

    session = FixSession(FixSessionConfig(sender_comp_id="CLIENT", target_comp_id="EXEC",
                                          store_path="fix-store"))
    session.connect("127.0.0.1", 19876)            # returns once the Logon is answered
    session.send(converter.new_order_single(order))
    report = session.receive(timeout=5.0)           # application messages and Rejects
    session.logout()

The session layer, as FIX 4.4 volume 2 describes it:

- Logon (A) with HeartBtInt (108); ResetSeqNumFlag (141=Y) when ``reset_on_logon``. An
  acceptor takes the initiator's HeartBtInt and answers with it.
- Heartbeat (0) after ``heartbeat_interval`` seconds without sending; a TestRequest (1) is
  answered with a Heartbeat carrying its TestReqID (112). After 1.2 intervals of silence
  the session sends a TestRequest, and after 1.2 more it disconnects.
- MsgSeqNum (34) of every message received: too high queues it and sends one ResendRequest
  (2) for the gap; too low with PossDupFlag (43=Y) is a duplicate and ignored; too low
  without it is fatal: Logout (5) naming both numbers, disconnect, ``FixSessionError``.
- A ResendRequest received is answered from the store: application messages again, with
  PossDupFlag=Y and OrigSendingTime (122); admin messages and unknown numbers as
  SequenceReset-GapFill (4 with 123=Y). SequenceReset-Reset (no 123=Y) sets the expected
  number whatever its own.
- A message missing a required tag (SendingTime 52 on every message, TestReqID on a
  TestRequest, ClOrdID on a NewOrderSingle, ...) or naming the wrong CompIDs gets a
  session-level Reject (3) with RefSeqNum (45), RefTagID (371), RefMsgType (372),
  SessionRejectReason (373) and Text (58). Garbled messages (bad BodyLength or CheckSum)
  are dropped and counted, as the standard says.
- Logout handshake both ways; ``disconnect`` drops the connection without one, as a crash
  would. Sequence numbers and sent messages persist in ``FixSessionStore``, so a restarted
  session logs on with the next numbers.

States: DISCONNECTED -> LOGGING_ON -> ACTIVE -> LOGGING_OUT -> DISCONNECTED.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from market_intel.adapters.fix.convert import FixMessage, format_utc_timestamp, new_message
from market_intel.adapters.fix.replay import FixFrame, FixFrameReader
from market_intel.adapters.fix.store import FixSessionStore
from market_intel.errors import ConfigError, FixSessionError, MalformedFrameError

__all__ = [
    "FixAcceptor",
    "FixSession",
    "FixSessionConfig",
    "FixSessionState",
    "FixSessionStatistics",
    "MessageHandler",
]

log = logging.getLogger("market_intel.fix")

_TICK: Final = 0.05
_ADMIN: Final = frozenset({"0", "1", "2", "3", "4", "5", "A"})
_HEADER: Final = frozenset(
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


class FixSessionState(enum.Enum):
    """Where a session is: DISCONNECTED, LOGGING_ON, ACTIVE or LOGGING_OUT."""

    DISCONNECTED = "disconnected"
    LOGGING_ON = "logging_on"
    ACTIVE = "active"
    LOGGING_OUT = "logging_out"


@dataclass(frozen=True, kw_only=True)
class FixSessionConfig:
    """One FIX session's settings; every violation is reported at once (``ConfigError``).

    Attributes:
        sender_comp_id: Our SenderCompID (49).
        target_comp_id: The counterparty's CompID (56 on what we send).
        store_path: The directory of the session's ``FixSessionStore``.
        begin_string: ``FIX.4.0`` ... ``FIX.4.4`` or ``FIXT.1.1``.
        heartbeat_interval: HeartBtInt (108), whole seconds >= 1 (an acceptor uses the
            initiator's).
        reset_on_logon: Reset both sequence numbers to 1 at every Logon (141=Y).
        logon_timeout: Seconds to wait for the Logon answer (and, as an acceptor, for the
            Logon after a connection).
        logout_timeout: Seconds to wait for the Logout answer.
        durable: ``fsync`` the store after every write.
        default_appl_ver_id: DefaultApplVerID (1137) sent in a FIXT.1.1 Logon.
    """

    sender_comp_id: str
    target_comp_id: str
    store_path: str | Path
    begin_string: str = "FIX.4.4"
    heartbeat_interval: int = 30
    reset_on_logon: bool = False
    logon_timeout: float = 10.0
    logout_timeout: float = 5.0
    durable: bool = True
    default_appl_ver_id: str = "9"

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        for name in ("sender_comp_id", "target_comp_id"):
            value = getattr(self, name)
            if type(value) is not str or not value or not value.isascii() or "\x01" in value:
                problems.append((name, f"{value!r}; expected a non-empty ASCII CompID"))
        versions = ("FIX.4.0", "FIX.4.1", "FIX.4.2", "FIX.4.3", "FIX.4.4", "FIXT.1.1")
        if self.begin_string not in versions:
            problems.append(("begin_string", f"{self.begin_string!r}; expected one of {versions}"))
        hb = self.heartbeat_interval
        if type(hb) is not int or hb < 1:
            problems.append(("heartbeat_interval", f"{hb!r}; expected whole seconds >= 1"))
        for name in ("logon_timeout", "logout_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                problems.append((name, f"{value!r}; expected seconds > 0"))
        if not isinstance(self.store_path, str | Path) or str(self.store_path) == "":
            problems.append(("store_path", f"{self.store_path!r}; expected a directory path"))
        for name in ("reset_on_logon", "durable"):
            if type(getattr(self, name)) is not bool:
                problems.append((name, f"{getattr(self, name)!r}; expected True or False"))
        if problems:
            raise ConfigError(problems, source="FixSessionConfig")

    @property
    def session_id(self) -> str:
        """``<BeginString>-<SenderCompID>-<TargetCompID>``, the store's file name."""
        return f"{self.begin_string}-{self.sender_comp_id}-{self.target_comp_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FixSessionStatistics:
    """A session's counters at one moment (since the session object was made)."""

    messages_sent: int
    messages_received: int
    heartbeats_sent: int
    test_requests_sent: int
    resend_requests_sent: int
    resend_requests_received: int
    messages_resent: int
    gap_fills_sent: int
    gap_fills_received: int
    duplicates_ignored: int
    rejects_sent: int
    rejects_received: int
    garbled: int
    """Messages dropped for a bad BodyLength, CheckSum or framing."""


MessageHandler = Callable[["FixSession", FixMessage], None]
"""Called on the reader thread with each application message (and session Reject)."""


def _value(message: FixMessage, tag: int) -> str | None:
    raw = message.get(tag)
    return None if raw is None else raw.decode("utf-8", "replace")


class _Fatal(Exception):
    """A protocol violation that ends the connection: Logout with ``text`` (if
    ``logout``), then disconnect."""

    def __init__(self, text: str, *, logout: bool = True) -> None:
        super().__init__(text)
        self.logout = logout


class FixSession:
    """One FIX session: sequence numbers, store, connection, admin messages.

    Make one per counterparty and ``connect`` it (initiator); a ``FixAcceptor`` makes its
    own for the sessions it accepts. Application messages arrive on the reader thread and
    go to ``on_message`` if given, else to a queue read by ``receive``.

    Args:
        config: The session's settings.
        on_message: Called with ``(session, message)`` for each application message and
            session-level Reject, on the reader thread.

    Raises:
        FixSessionError: The store is open in another session.
    """

    def __init__(self, config: FixSessionConfig, *, on_message: MessageHandler | None = None):
        self.config = config
        self.store = FixSessionStore(config.store_path, config.session_id, durable=config.durable)
        self.on_message = on_message
        self.heartbeat_interval = config.heartbeat_interval
        self.error: FixSessionError | None = None
        """Why the last connection ended abnormally, or None."""
        self.logout_text: str | None = None
        """Text (58) of the last Logout received."""
        self._state = FixSessionState.DISCONNECTED
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._inbox: queue.SimpleQueue[FixMessage] = queue.SimpleQueue()
        self._logged_on = threading.Event()
        self._disconnected = threading.Event()
        self._disconnected.set()
        self._thread: threading.Thread | None = None
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

    # Public API

    @property
    def state(self) -> FixSessionState:
        """The session's state."""
        return self._state

    @property
    def next_sender_seq(self) -> int:
        """MsgSeqNum of the next message we send."""
        return self.store.next_sender_seq

    @property
    def next_target_seq(self) -> int:
        """MsgSeqNum we expect next from the counterparty."""
        return self.store.next_target_seq

    def statistics(self) -> FixSessionStatistics:
        """Return the session's counters."""
        return FixSessionStatistics(**self._counts)

    def connect(self, host: str, port: int, *, timeout: float | None = None) -> None:
        """Connect as initiator and log on; return once the counterparty's Logon arrives.

        Args:
            host: The acceptor's address.
            port: The acceptor's port.
            timeout: Seconds for the TCP connection and the Logon answer together;
                ``config.logon_timeout`` when None.

        Raises:
            FixSessionError: The session is connected already, the connection failed, the
                counterparty refused the Logon (its Logout text is in the message) or did
                not answer in time.
        """
        limit = self.config.logon_timeout if timeout is None else timeout
        with self._lock:
            if self._state is not FixSessionState.DISCONNECTED:
                raise FixSessionError(f"state: {self._state.value}; expected disconnected")
            if self.config.reset_on_logon:
                self.store.reset()
            try:
                sock = socket.create_connection((host, port), timeout=limit)
            except OSError as exc:
                raise FixSessionError(f"connect: {host}:{port}: {exc}") from exc
            self._open(sock, initiator=True)
            self._deadline = time.monotonic() + limit
            body: list[tuple[int, object]] = [(98, 0), (108, self.heartbeat_interval)]
            if self.config.reset_on_logon:
                body.append((141, "Y"))
            if self.config.begin_string == "FIXT.1.1":
                body.append((1137, self.config.default_appl_ver_id))
            try:
                self._send_admin("A", body)
            except OSError as exc:
                self._drop(FixSessionError(f"connect: {exc}"))
                raise FixSessionError(f"connect: {host}:{port}: {exc}") from exc
            self._start_reader(sock, FixFrameReader(venue=self.config.target_comp_id), [])
        if not self._logged_on.wait(limit + 1.0) or self.state is not FixSessionState.ACTIVE:
            self._drop(FixSessionError("logon: no Logon answer before the timeout"))
            raise self.error or FixSessionError("logon: the connection closed")

    def send(self, message: FixMessage) -> int:
        """Send an application message; the header (8, 9, 34, 49, 52, 56) and 10 are ours.

        Args:
            message: MsgType (35) and body fields; header and trailer fields are ignored.

        Returns:
            The MsgSeqNum it was sent with.

        Raises:
            FixSessionError: The session is not logged on, or the message has no MsgType.
        """
        msg_type = _value(message, 35)
        if not msg_type:
            raise FixSessionError("message: MsgType(35) missing; expected a message type")
        body = [(int(tag), value) for tag, value in message.pairs if tag not in _HEADER]
        with self._lock:
            if self._state is not FixSessionState.ACTIVE:
                raise FixSessionError(f"state: {self._state.value}; expected active to send")
            try:
                return self._send_new(msg_type, body)
            except OSError as exc:
                error = FixSessionError(f"connection: {exc}")
        self._drop(error)
        raise error

    def receive(self, timeout: float | None = None) -> FixMessage | None:
        """Return the next application message or Reject, or None after ``timeout`` seconds."""
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def logout(self, text: str = "", *, timeout: float | None = None) -> None:
        """Send Logout (5), wait for the counterparty's, then disconnect."""
        with self._lock:
            if self._state is not FixSessionState.ACTIVE:
                self._drop(None)
                return
            limit = self.config.logout_timeout if timeout is None else timeout
            self._state = FixSessionState.LOGGING_OUT
            self._deadline = time.monotonic() + limit
            try:
                self._send_admin("5", [(58, text)] if text else [])
            except OSError:
                limit = 0.0
        self._disconnected.wait(limit + 1.0 if limit else 0.0)
        self._drop(None)

    def disconnect(self) -> None:
        """Drop the connection without a Logout, as a crash would; the store is kept."""
        self._drop(None)

    def wait_disconnected(self, timeout: float | None = None) -> bool:
        """Wait until the connection is gone; return whether it is."""
        return self._disconnected.wait(timeout)

    def close(self) -> None:
        """Log out if logged on, then close the store."""
        if self._state is FixSessionState.ACTIVE:
            self.logout()
        self._drop(None)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FixSession({self.config.session_id!r}, {self._state.value})"

    # Connection

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

    def _start_reader(
        self, sock: socket.socket, reader: FixFrameReader, pending: list[FixFrame]
    ) -> None:
        name = f"fix-{self.config.session_id}"
        thread = threading.Thread(target=self._run, args=(sock, reader, pending), name=name)
        thread.daemon = True
        self._thread = thread
        thread.start()

    def _run(self, sock: socket.socket, reader: FixFrameReader, pending: list[FixFrame]) -> None:
        try:
            for frame in pending:
                self._guarded(sock, frame)
            while self._sock is sock:
                try:
                    readable, _, _ = select.select([sock], [], [], _TICK)
                    data = sock.recv(65536) if readable else None
                except (OSError, ValueError):
                    break
                if data == b"":
                    break
                for item in reader.feed(data) if data else ():
                    if isinstance(item, MalformedFrameError):
                        self._counts["garbled"] += 1
                        log.warning("%s: garbled message dropped: %s", self, item)
                    else:
                        self._guarded(sock, item)
                if self._sock is sock:
                    self._guarded(sock, None)
        finally:
            early = self._sock is sock and self._state is not FixSessionState.LOGGING_OUT
            error = FixSessionError("connection: closed by the counterparty") if early else None
            self._drop(error, sock)

    def _guarded(self, sock: socket.socket, frame: FixFrame | None) -> None:
        """Handle one frame (or a timer tick); a fatal violation ends the connection.

        Application messages are handed over after the lock is released, so a handler may
        block or send without holding up the session.
        """
        try:
            with self._lock:
                if self._sock is not sock:
                    return
                if frame is None:
                    self._on_timer()
                else:
                    self._on_frame(frame)
        except _Fatal as fatal:
            log.warning("%s: %s", self, fatal)
            if fatal.logout and self._sock is sock:
                with contextlib.suppress(OSError):
                    self._send_admin("5", [(58, str(fatal))])
            self._drop(FixSessionError(str(fatal)), sock)
        except OSError as exc:
            self._drop(FixSessionError(f"connection: {exc}"), sock)
        finally:
            delivered, self._delivered = self._delivered, []
            for message in delivered:
                self._hand_over(message)

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
        now = _value(message, 52)
        message.append_pair(43, "Y")
        message.append_pair(122, now)
        message.append_pair(123, "Y")
        message.append_pair(36, new_seq)
        self._write(message.encode())
        self._counts["gap_fills_sent"] += 1

    def _resend(self, seq: int, stored: FixMessage) -> None:
        msg_type = _value(stored, 35) or ""
        message = self._header(msg_type, seq)
        message.append_pair(43, "Y")
        message.append_pair(122, _value(stored, 52) or _value(message, 52))
        for tag, value in stored.pairs:
            if tag not in _HEADER:
                message.append_pair(int(tag), value)
        self._write(message.encode())
        self._counts["messages_resent"] += 1

    # Receiving (callers hold self._lock)

    def _on_timer(self) -> None:
        now = time.monotonic()
        state = self._state
        if state is FixSessionState.LOGGING_ON and now > self._deadline:
            raise _Fatal("logon: no Logon before the timeout", logout=False)
        if state is FixSessionState.LOGGING_OUT and now > self._deadline:
            raise _Fatal("logout: no Logout answer before the timeout", logout=False)
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
            raise _Fatal(
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
        seq_text = _value(message, 34)
        if seq_text is None or not seq_text.isdigit():
            raise _Fatal(f"MsgSeqNum(34): {seq_text!r}; expected a sequence number")
        seq = int(seq_text)
        if self._state is FixSessionState.LOGGING_ON:
            if msg_type == "5":
                self.logout_text = text = _value(message, 58)
                raise _Fatal(f"logon: refused by the counterparty: {text!r}", logout=False)
            if msg_type != "A":
                raise _Fatal(f"MsgType(35): {msg_type!r}; expected Logon (A) first")
            self._on_logon(frame, seq)
            return
        sender, target = _value(message, 49), _value(message, 56)
        if sender != self.config.target_comp_id or target != self.config.sender_comp_id:
            self._reject(seq, msg_type, 49, _COMP_ID_PROBLEM, f"CompID problem: {sender}/{target}")
            raise _Fatal(f"SenderCompID(49): {sender!r}; expected {self.config.target_comp_id!r}")
        if msg_type == "4" and _value(message, 123) != "Y":
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
            if _value(message, 43) == "Y":
                self._counts["duplicates_ignored"] += 1
                return
            raise _Fatal(f"MsgSeqNum too low, expecting {expected} but received {seq}")
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
        reset = _value(message, 141) == "Y"
        interval = _value(message, 108)
        if interval is None or not interval.isdigit() or int(interval) < 1:
            raise _Fatal(f"HeartBtInt(108): {interval!r}; expected whole seconds >= 1")
        if not self._initiator:
            self.heartbeat_interval = int(interval)
            if reset or self.config.reset_on_logon:
                self.store.reset()
        elif reset and seq == 1:  # the acceptor reset: so do we, on its side
            self.store.set_next_target_seq(1)
        expected = self.store.next_target_seq
        if seq < expected and not reset:
            raise _Fatal(f"MsgSeqNum too low, expecting {expected} but received {seq}")
        if not self._initiator:
            body: list[tuple[int, object]] = [(98, 0), (108, self.heartbeat_interval)]
            if reset or self.config.reset_on_logon:
                body.append((141, "Y"))
            if self.config.begin_string == "FIXT.1.1":
                body.append((1137, self.config.default_appl_ver_id))
            self._send_admin("A", body)
        self._state = FixSessionState.ACTIVE
        log.info("%s: logged on, next sender seq %d", self, self.next_sender_seq)
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
        if _value(message, 43) == "Y" and msg_type != "4" and message.get(122) is None:
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
            self._send_admin("0", [(112, _value(message, 112))])
        elif msg_type == "2":
            self._on_resend_request(frame, seq)
        elif msg_type == "5":
            self.logout_text = _value(message, 58)
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
        new_text = _value(frame.message, 36)
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
        begin_text, end_text = _value(frame.message, 7), _value(frame.message, 16)
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

    def _hand_over(self, message: FixMessage) -> None:
        handler = self.on_message
        if handler is None:
            self._inbox.put(message)
            return
        try:
            handler(self, message)
        except Exception:
            log.exception("%s: on_message raised; the session goes on", self)


class FixAcceptor:
    """Accept FIX sessions on one TCP port: one ``FixSession`` per configured counterparty.

    A connection's first message must be a Logon whose SenderCompID and TargetCompID match
    a configured session that is not connected; anything else is closed without an answer.

    Args:
        configs: The sessions accepted (``sender_comp_id`` is ours in each).
        host: The address to listen on.
        port: The port; 0 picks a free one (see ``port``).
        on_message: The handler of every session (see ``FixSession``).
    """

    def __init__(
        self,
        configs: Sequence[FixSessionConfig],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_message: MessageHandler | None = None,
    ) -> None:
        self.sessions: dict[tuple[str, str], FixSession] = {}
        """The sessions by ``(sender_comp_id, target_comp_id)``."""
        try:
            for config in configs:
                key = (config.sender_comp_id, config.target_comp_id)
                self.sessions[key] = FixSession(config, on_message=on_message)
        except BaseException:
            for session in self.sessions.values():
                session.store.close()
            raise
        self._listener = socket.create_server((host, port))
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="fix-acceptor")
        self._thread.daemon = True
        self._thread.start()

    def session(self, target_comp_id: str) -> FixSession:
        """Return the session with that counterparty.

        Raises:
            KeyError: No configured session has that TargetCompID.
        """
        for (_, target), session in self.sessions.items():
            if target == target_comp_id:
                return session
        known = sorted(target for _, target in self.sessions)
        raise KeyError(f"target_comp_id: {target_comp_id!r}; expected one of {known}")

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], _TICK)
                if not readable:
                    continue
                sock, _ = self._listener.accept()
            except (OSError, ValueError):
                return
            threading.Thread(target=self._handshake, args=(sock,), daemon=True).start()

    def _handshake(self, sock: socket.socket) -> None:
        """Read the Logon of a new connection and hand the connection to its session."""
        reader = FixFrameReader(venue="acceptor")
        deadline = time.monotonic() + max(s.config.logon_timeout for s in self.sessions.values())
        frames: list[FixFrame] = []
        try:
            sock.settimeout(_TICK)
            while not frames and time.monotonic() < deadline and not self._stopping.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                frames = [item for item in reader.feed(data) if isinstance(item, FixFrame)]
        except OSError:
            frames = []
        first = frames[0].message if frames else None
        ours, theirs = (_value(first, 56), _value(first, 49)) if first is not None else ("", "")
        session = self.sessions.get((ours or "", theirs or ""))
        if first is None or _value(first, 35) != "A" or session is None:
            log.warning("acceptor: connection closed: no Logon for a configured session")
            sock.close()
            return
        with session._lock:
            if session.state is not FixSessionState.DISCONNECTED or self._stopping.is_set():
                log.warning("%s: second connection refused", session)
                sock.close()
                return
            session._open(sock, initiator=False)
            session._deadline = time.monotonic() + session.config.logon_timeout
            session._thread = threading.current_thread()
        session._run(sock, reader, frames)

    def stop(self) -> None:
        """Log every session out, stop listening and close the stores."""
        self._stopping.set()
        self._listener.close()
        self._thread.join(5.0)
        for session in self.sessions.values():
            session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
