"""``FixAcceptor``: FIX sessions accepted on one TCP port."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from market_intel.adapters.fix._config import FixSessionConfig, FixSessionState
from market_intel.adapters.fix._fields import text_of
from market_intel.adapters.fix._session import TICK, FixSession, MessageHandler
from market_intel.adapters.fix.replay import FixFrame, FixFrameReader

log = logging.getLogger("market_intel.fix")


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
                readable, _, _ = select.select([self._listener], [], [], TICK)
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
            sock.settimeout(TICK)
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
        ours, theirs = (text_of(first, 56), text_of(first, 49)) if first is not None else ("", "")
        session = self.sessions.get((ours or "", theirs or ""))
        if first is None or text_of(first, 35) != "A" or session is None:
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
