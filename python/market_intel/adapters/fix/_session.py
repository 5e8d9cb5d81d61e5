"""``FixSession``: one FIX session's blocking API and its reader thread."""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self

from market_intel.adapters.fix._config import (
    FixSessionConfig,
    FixSessionState,
    FixSessionStatistics,
)
from market_intel.adapters.fix._fields import FixMessage, text_of
from market_intel.adapters.fix._session_layer import HEADER, Fatal, SessionLayer
from market_intel.adapters.fix.replay import FixFrame, FixFrameReader
from market_intel.errors import FixSessionError, MalformedFrameError

log = logging.getLogger("market_intel.fix")

TICK: Final = 0.05
"""Seconds between the reader's timer checks (and the acceptor's checks for ``stop``)."""

MessageHandler = Callable[["FixSession", FixMessage], None]
"""Called on the reader thread with each application message (and session Reject)."""


class FixSession(SessionLayer):
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
        super().__init__(config)
        self.on_message = on_message
        self._inbox: queue.SimpleQueue[FixMessage] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

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
        msg_type = text_of(message, 35)
        if not msg_type:
            raise FixSessionError("message: MsgType(35) missing; expected a message type")
        body = [(int(tag), value) for tag, value in message.pairs if tag not in HEADER]
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

    # Reader thread

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
                    readable, _, _ = select.select([sock], [], [], TICK)
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
        except Fatal as fatal:
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

    def _hand_over(self, message: FixMessage) -> None:
        handler = self.on_message
        if handler is None:
            self._inbox.put(message)
            return
        try:
            handler(self, message)
        except Exception:
            log.exception("%s: on_message raised; the session goes on", self)
