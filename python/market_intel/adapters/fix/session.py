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

Implemented in ``_config`` (settings, states, statistics), ``_session_layer`` (the rules above,
under the session's lock), ``_session`` (``FixSession``: the blocking API and the reader
thread), ``_acceptor`` (``FixAcceptor``).
"""

from __future__ import annotations

from market_intel.adapters.fix._acceptor import FixAcceptor
from market_intel.adapters.fix._config import (
    FixSessionConfig,
    FixSessionState,
    FixSessionStatistics,
)
from market_intel.adapters.fix._session import FixSession, MessageHandler

__all__ = [
    "FixAcceptor",
    "FixSession",
    "FixSessionConfig",
    "FixSessionState",
    "FixSessionStatistics",
    "MessageHandler",
]
