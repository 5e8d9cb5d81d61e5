"""A FIX session's settings, its states and its statistics."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from market_intel.errors import ConfigError


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
