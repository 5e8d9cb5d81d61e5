"""FIX sessions over real TCP on localhost: our initiator against our acceptor, and scripted
counterparties (a plain socket speaking FIX) for the misbehaviours a real engine never shows.

No timings are asserted: waits poll for a state with a generous deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from market_intel.adapters.fix.convert import (
    FixConverter,
    FixMessage,
    MarketDataEntry,
    format_utc_timestamp,
    market_data_request,
    market_data_snapshot,
    new_message,
    parse_market_data_request,
)
from market_intel.adapters.fix.replay import FixFrame, FixFrameReader
from market_intel.adapters.fix.session import (
    FixAcceptor,
    FixSession,
    FixSessionConfig,
    FixSessionState,
)
from market_intel.adapters.fix.store import FixSessionStore
from market_intel.enums import MarketDataKind, OrderStatus, Side
from market_intel.errors import ConfigError, FixSessionError
from market_intel.messages import MarketData, Order

WAIT = 10.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def order_message(cl_ord_id: str, symbol: str = "MSFT", price: str = "10.5") -> FixMessage:
    message = new_message("D")
    fields = ((11, cl_ord_id), (21, "1"), (55, symbol), (54, "1"), (60, "20240101-00:00:00"),
              (38, "100"), (40, "2"), (44, price))  # fmt: skip
    for tag, value in fields:
        message.append_pair(tag, value)
    return message


class ScriptedPeer:
    """The other end of a real TCP connection, driven step by step by a test."""

    def __init__(self, sock: socket.socket, sender: str, target: str) -> None:
        self.sock = sock
        self.sock.settimeout(0.05)
        self.sender, self.target = sender, target
        self.seq = 1
        self.reader = FixFrameReader(venue="peer")
        self.received: list[FixMessage] = []
        self.closed = False

    def send(
        self, msg_type: str, *fields: tuple[int, object], seq: int | None = None,
        possdup: bool = False, sending_time: bool = True,
    ) -> int:  # fmt: skip
        number = self.seq if seq is None else seq
        if seq is None:
            self.seq += 1
        message = new_message(msg_type, "FIX.4.4")
        message.append_pair(49, self.sender)
        message.append_pair(56, self.target)
        message.append_pair(34, number)
        if sending_time:
            message.append_pair(52, format_utc_timestamp())
        if possdup:
            message.append_pair(43, "Y")
            message.append_pair(122, format_utc_timestamp())
        for tag, value in fields:
            message.append_pair(tag, value)
        self.sock.sendall(message.encode())
        return number

    def _pump(self) -> None:
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        for item in self.reader.feed(data):
            assert isinstance(item, FixFrame), item
            self.received.append(item.message)

    def expect(self, msg_type: str, timeout: float = WAIT) -> FixMessage:
        """Return the first message of that type not yet taken (others stay in order)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self.received):
                if message.get(35) == msg_type.encode():
                    return self.received.pop(i)
            if self.closed or time.monotonic() > deadline:
                seen = [m.get(35) for m in self.received]
                raise AssertionError(f"no 35={msg_type} (closed={self.closed}, seen {seen})")
            self._pump()

    def wait_closed(self, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed:
            if time.monotonic() > deadline:
                raise AssertionError("the connection stayed open")
            self._pump()

    def close(self) -> None:
        self.sock.close()


def config(tmp_path: Path, sender: str, target: str, **overrides: object) -> FixSessionConfig:
    settings: dict[str, object] = {
        "sender_comp_id": sender, "target_comp_id": target,
        "store_path": tmp_path / f"store-{sender}", "heartbeat_interval": 30,
        "logon_timeout": 5.0, "logout_timeout": 2.0,
    }  # fmt: skip
    settings.update(overrides)
    return FixSessionConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def acceptor(tmp_path: Path) -> Iterator[FixAcceptor]:
    with FixAcceptor([config(tmp_path, "EXEC", "CLIENT")]) as server:
        yield server


@pytest.fixture
def peer_client(acceptor: FixAcceptor) -> Iterator[ScriptedPeer]:
    """A scripted initiator, logged on to our acceptor."""
    peer = ScriptedPeer(socket.create_connection(("127.0.0.1", acceptor.port)), "CLIENT", "EXEC")
    peer.send("A", (98, 0), (108, 30))
    logon = peer.expect("A")
    assert logon.get(108) == b"30" and logon.get(34) == b"1"
    yield peer
    peer.close()


class PeerServer:
    """A listening socket whose connections become scripted acceptors."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port: int = self.listener.getsockname()[1]
        self.peers: list[ScriptedPeer] = []

    def accept(self) -> ScriptedPeer:
        sock, _ = self.listener.accept()
        self.peers.append(ScriptedPeer(sock, "EXEC", "CLIENT"))
        return self.peers[-1]

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.listener.close()


@pytest.fixture
def peer_server() -> Iterator[PeerServer]:
    server = PeerServer()
    yield server
    server.close()


def connect_in_background(session: FixSession, port: int) -> list[BaseException]:
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            session.connect("127.0.0.1", port)
        except BaseException as exc:
            errors.append(exc)

    threading.Thread(target=run, daemon=True).start()
    return errors


# Logon, heartbeats, logout


def test_logon_heartbeats_and_logout(tmp_path: Path, acceptor: FixAcceptor) -> None:
    """HeartBtInt 1 both ways: each side sends a Heartbeat whenever it has sent nothing for a
    second, and neither needs a TestRequest."""
    theirs = acceptor.session("CLIENT")
    with FixSession(config(tmp_path, "CLIENT", "EXEC", heartbeat_interval=1)) as ours:
        ours.connect("127.0.0.1", acceptor.port)
        assert ours.state is FixSessionState.ACTIVE
        wait_for(lambda: theirs.state is FixSessionState.ACTIVE, "the acceptor to log on")
        assert theirs.heartbeat_interval == 1  # taken from the initiator's HeartBtInt (108)
        ((_, logon),) = ours.store.sent(1, 1)
        assert b"35=A\x01" in logon and b"\x01108=1\x01" in logon
        wait_for(lambda: ours.statistics().heartbeats_sent >= 2, "our heartbeats")
        wait_for(lambda: theirs.statistics().heartbeats_sent >= 2, "their heartbeats")
        assert ours.statistics().test_requests_sent == 0  # heartbeats kept both sides alive
        ours.send(order_message("c1"))
        received = theirs.receive(WAIT)
        assert received is not None and received.get(11) == b"c1"
        ours.logout("done")
        assert ours.state is FixSessionState.DISCONNECTED and ours.error is None
        wait_for(lambda: theirs.state is FixSessionState.DISCONNECTED, "their logout")
        assert theirs.error is None and theirs.logout_text == "done"
        last_sent = ours.store.sent(ours.next_sender_seq - 1, ours.next_sender_seq - 1)
        assert b"35=5\x01" in last_sent[0][1]
        assert ours.next_sender_seq == theirs.next_target_seq


def test_test_request_is_answered_with_its_id(peer_client: ScriptedPeer) -> None:
    peer_client.send("1", (112, "PING-7"))
    heartbeat = peer_client.expect("0")
    assert heartbeat.get(112) == b"PING-7"


def test_silent_counterparty_gets_a_test_request_then_a_disconnect(
    tmp_path: Path, peer_server: PeerServer
) -> None:
    with FixSession(config(tmp_path, "CLIENT", "EXEC", heartbeat_interval=1)) as ours:
        errors = connect_in_background(ours, peer_server.port)
        peer = peer_server.accept()
        assert peer.expect("A").get(108) == b"1"
        peer.send("A", (98, 0), (108, 1))
        wait_for(lambda: ours.state is FixSessionState.ACTIVE, "logon")
        assert peer.expect("0").get(112) is None  # a heartbeat on the interval
        test_request = peer.expect("1")  # we are silent: it probes
        assert test_request.get(112) is not None
        peer.wait_closed()  # still silent: it disconnects
        assert errors == []
        assert ours.state is FixSessionState.DISCONNECTED
        assert ours.error is not None and "TestRequest" in str(ours.error)


# Sequence numbers


def test_gap_gets_a_resend_request_and_a_gap_fill_closes_it(
    acceptor: FixAcceptor, peer_client: ScriptedPeer
) -> None:
    theirs = acceptor.session("CLIENT")
    peer_client.send("D", *order_message("c2").pairs[1:])  # type: ignore[arg-type]
    assert theirs.receive(WAIT) is not None
    peer_client.send("D", *order_message("c5").pairs[1:], seq=5)  # type: ignore[arg-type]
    request = peer_client.expect("2")
    assert (request.get(7), request.get(16)) == (b"3", b"0")
    assert theirs.receive(0.2) is None  # held until the gap is closed
    peer_client.send("4", (123, "Y"), (36, 5), seq=3, possdup=True)
    delivered = theirs.receive(WAIT)
    assert delivered is not None and delivered.get(11) == b"c5"
    wait_for(lambda: theirs.next_target_seq == 6, "the expected number to pass the gap")
    assert theirs.statistics().gap_fills_received == 1


def test_too_low_without_possdup_logs_out_with_an_error(
    acceptor: FixAcceptor, peer_client: ScriptedPeer
) -> None:
    peer_client.send("0")
    peer_client.send("0", seq=1)
    logout = peer_client.expect("5")
    assert logout.get(58) == b"MsgSeqNum too low, expecting 3 but received 1"
    peer_client.wait_closed()
    theirs = acceptor.session("CLIENT")
    wait_for(lambda: theirs.state is FixSessionState.DISCONNECTED, "the disconnect")
    assert isinstance(theirs.error, FixSessionError) and "too low" in str(theirs.error)


def test_possdup_duplicates_are_ignored(acceptor: FixAcceptor, peer_client: ScriptedPeer) -> None:
    theirs = acceptor.session("CLIENT")
    first = peer_client.send("D", *order_message("c1").pairs[1:])  # type: ignore[arg-type]
    peer_client.send("D", *order_message("c1").pairs[1:], seq=first, possdup=True)  # type: ignore[arg-type]
    peer_client.send("D", *order_message("c3").pairs[1:])  # type: ignore[arg-type]
    got = [theirs.receive(WAIT), theirs.receive(WAIT)]
    assert [m.get(11) for m in got if m is not None] == [b"c1", b"c3"]
    assert theirs.statistics().duplicates_ignored == 1
    assert theirs.state is FixSessionState.ACTIVE


def test_sequence_reset_reset_sets_the_next_number(
    acceptor: FixAcceptor, peer_client: ScriptedPeer
) -> None:
    theirs = acceptor.session("CLIENT")
    peer_client.send("4", (36, 20), seq=2)
    peer_client.seq = 20
    peer_client.send("D", *order_message("c20").pairs[1:])  # type: ignore[arg-type]
    delivered = theirs.receive(WAIT)
    assert delivered is not None and delivered.get(34) == b"20"
    assert theirs.next_target_seq == 21


def test_resend_request_resends_application_messages_and_gap_fills_admin(
    tmp_path: Path, acceptor: FixAcceptor
) -> None:
    theirs = acceptor.session("CLIENT")
    with FixSession(config(tmp_path, "CLIENT", "EXEC")) as ours:
        ours.connect("127.0.0.1", acceptor.port)
        originals = [ours.send(order_message(f"o{i}")) for i in (1, 2)]
        first = [theirs.receive(WAIT) for _ in originals]
        assert [m.get(43) for m in first if m is not None] == [None, None]
        # Inject a gap: the acceptor forgets everything after the Logon's number (the line
        # is quiet: heartbeats every 30 s).
        theirs.store.set_next_target_seq(1)
        ours.send(order_message("o3"))
        resent = [theirs.receive(WAIT) for _ in range(3)]
        assert [m.get(11) for m in resent if m is not None] == [b"o1", b"o2", b"o3"]
        # o1 and o2 again, as PossDup; then the o3 held since the gap; its resent copy is a
        # duplicate by then.
        assert [m.get(43) for m in resent if m is not None] == [b"Y", b"Y", None]
        stored = dict(ours.store.sent(1, 10))
        for message in resent[:2]:
            assert message is not None
            seq = int(message.get(34) or 0)
            assert b"52=" + message.get(122) + b"\x01" in stored[seq]  # type: ignore[operator]
        stats = ours.statistics()
        assert stats.resend_requests_received == 1 and stats.messages_resent == 3
        assert stats.gap_fills_sent == 1  # the Logon (seq 1) is never sent again
        assert theirs.statistics().resend_requests_sent == 1
        wait_for(lambda: theirs.statistics().duplicates_ignored == 1, "the duplicate o3")
        wait_for(lambda: theirs.next_target_seq == ours.next_sender_seq, "sequence continuity")


def test_missing_required_tag_gets_a_session_reject(
    acceptor: FixAcceptor, peer_client: ScriptedPeer
) -> None:
    theirs = acceptor.session("CLIENT")
    fields = [(int(t), v) for t, v in order_message("c9").pairs[1:] if t != b"55"]
    seq = peer_client.send("D", *fields)
    reject = peer_client.expect("3")
    assert reject.get(45) == str(seq).encode() and reject.get(371) == b"55"
    assert reject.get(372) == b"D" and reject.get(373) == b"1"
    assert reject.get(58) == b"Required tag missing"
    seq = peer_client.send("1", sending_time=False)
    reject = peer_client.expect("3")
    assert (reject.get(45), reject.get(371)) == (str(seq).encode(), b"52")
    peer_client.send("1")
    assert peer_client.expect("3").get(371) == b"112"
    peer_client.send("D", *order_message("c10").pairs[1:])  # type: ignore[arg-type]
    delivered = theirs.receive(WAIT)
    assert delivered is not None and delivered.get(11) == b"c10"  # the session goes on
    assert theirs.statistics().rejects_sent == 3


def test_wrong_comp_id_is_rejected_and_logged_out(
    acceptor: FixAcceptor, peer_client: ScriptedPeer
) -> None:
    peer_client.sender = "INTRUDER"
    peer_client.send("0")
    assert peer_client.expect("3").get(373) == b"9"
    assert peer_client.expect("5") is not None
    peer_client.wait_closed()


# Persistence across restarts


def test_restarted_initiator_logs_on_with_the_next_numbers(
    tmp_path: Path, acceptor: FixAcceptor
) -> None:
    theirs = acceptor.session("CLIENT")
    settings = config(tmp_path, "CLIENT", "EXEC")
    first = FixSession(settings)
    first.connect("127.0.0.1", acceptor.port)
    first.send(order_message("r1"))
    assert theirs.receive(WAIT) is not None
    sent = first.next_sender_seq
    first.disconnect()  # no Logout: as a crash
    first.close()
    wait_for(lambda: theirs.state is FixSessionState.DISCONNECTED, "the acceptor to notice")
    with FixSession(settings) as second:
        assert second.next_sender_seq == sent
        second.connect("127.0.0.1", acceptor.port)
        second.send(order_message("r2"))
        delivered = theirs.receive(WAIT)
        assert delivered is not None and delivered.get(34) == str(sent + 1).encode()
        assert theirs.statistics().resend_requests_sent == 0
        assert second.statistics().resend_requests_sent == 0
        second.logout()


def test_killed_initiator_process_resumes_its_numbers(
    tmp_path: Path, acceptor: FixAcceptor
) -> None:
    theirs = acceptor.session("CLIENT")
    settings = config(tmp_path, "CLIENT", "EXEC")
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from market_intel.adapters.fix.convert import new_message
        from market_intel.adapters.fix.session import FixSession, FixSessionConfig
        session = FixSession(FixSessionConfig(sender_comp_id="CLIENT", target_comp_id="EXEC",
                             store_path=Path({str(settings.store_path)!r}), heartbeat_interval=30))
        session.connect("127.0.0.1", {acceptor.port})
        for i in range(3):
            message = new_message("D")
            for tag, value in ((11, f"k{{i}}"), (55, "MSFT"), (54, "1"), (38, "1"),
                               (40, "2"), (44, "1.5")):
                message.append_pair(tag, value)
            session.send(message)
        print(session.next_sender_seq, flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        next_seq = int(child.stdout.readline())
        for _ in range(3):
            assert theirs.receive(WAIT) is not None
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    wait_for(lambda: theirs.state is FixSessionState.DISCONNECTED, "the acceptor to notice")
    with FixSession(settings) as restarted:
        assert restarted.next_sender_seq >= next_seq
        restarted.connect("127.0.0.1", acceptor.port)
        restarted.send(order_message("after-kill"))
        delivered = theirs.receive(WAIT)
        assert delivered is not None and delivered.get(11) == b"after-kill"
        assert theirs.statistics().resend_requests_sent == 0
        restarted.logout()


def test_restart_that_lost_incoming_messages_asks_for_them_again(
    tmp_path: Path, acceptor: FixAcceptor
) -> None:
    theirs = acceptor.session("CLIENT")
    settings = config(tmp_path, "CLIENT", "EXEC")
    with FixSession(settings) as ours:
        ours.connect("127.0.0.1", acceptor.port)
        wait_for(lambda: theirs.state is FixSessionState.ACTIVE, "logon")
        for i in (1, 2):
            report = new_message("8")
            for tag, value in ((37, f"x{i}"), (11, f"c{i}"), (17, f"e{i}"), (150, "F"),
                               (39, "2"), (54, "1"), (55, "MSFT"), (38, "1"), (14, "1"),
                               (151, "0"), (6, "1.5"), (31, "1.5"), (32, "1")):  # fmt: skip
                report.append_pair(tag, value)
            theirs.send(report)
        assert [ours.receive(WAIT) is not None for _ in (1, 2)] == [True, True]
        lost_from = ours.next_target_seq - 2
        ours.disconnect()
        ours.store.set_next_target_seq(lost_from)  # as if the last two never reached the disk
        wait_for(lambda: theirs.state is FixSessionState.DISCONNECTED, "the acceptor to notice")
        ours.connect("127.0.0.1", acceptor.port)
        again = [ours.receive(WAIT) for _ in (1, 2)]
        assert [m.get(11) for m in again if m is not None] == [b"c1", b"c2"]
        assert all(m is not None and m.get(43) == b"Y" for m in again)
        assert ours.statistics().resend_requests_sent == 1
        wait_for(lambda: ours.next_target_seq == theirs.next_sender_seq, "sequence continuity")
        converted = FixConverter(venue="exec").convert(again[0])  # type: ignore[arg-type]
        assert [type(m.payload).__name__ for m in converted] == ["Order", "Trade"]
        ours.logout()


def test_logon_with_a_number_too_low_is_refused(tmp_path: Path, acceptor: FixAcceptor) -> None:
    settings = config(tmp_path, "CLIENT", "EXEC")
    with FixSession(settings) as ours:
        ours.connect("127.0.0.1", acceptor.port)
        ours.send(order_message("z"))
        ours.disconnect()
        ours.store.set_next_sender_seq(1)
        wait_for(lambda: acceptor.session("CLIENT").state is FixSessionState.DISCONNECTED, "drop")
        with pytest.raises(FixSessionError, match="MsgSeqNum too low, expecting 3 but received 1"):
            ours.connect("127.0.0.1", acceptor.port)
        assert ours.state is FixSessionState.DISCONNECTED


def test_reset_on_logon_starts_both_sides_at_one(tmp_path: Path, acceptor: FixAcceptor) -> None:
    theirs = acceptor.session("CLIENT")
    settings = config(tmp_path, "CLIENT", "EXEC", reset_on_logon=True)
    with FixSession(settings) as ours:
        for _ in range(2):
            ours.connect("127.0.0.1", acceptor.port)
            ours.send(order_message("again"))
            delivered = theirs.receive(WAIT)
            assert delivered is not None and delivered.get(34) == b"2"
            ours.logout()
            wait_for(lambda: theirs.state is FixSessionState.DISCONNECTED, "logout")


# Market data requests answered by an acceptor


def test_acceptor_answers_a_market_data_request(tmp_path: Path) -> None:
    book = [
        MarketDataEntry(entry_type=kind, symbol="J200", price=Decimal(px), size=Decimal(qty))
        for kind, px, qty in (("0", "25929.17", "3"), ("1", "25930.05", "1.5"))
    ]

    def answer(session: FixSession, message: FixMessage) -> None:
        if message.get(35) == b"V":
            request = parse_market_data_request(message, venue="exec")
            for symbol in request.symbols:
                reply = market_data_snapshot(
                    md_req_id=request.md_req_id, symbol=symbol, entries=book
                )
                session.send(reply)

    with (
        FixAcceptor([config(tmp_path, "EXEC", "CLIENT")], on_message=answer) as server,
        FixSession(config(tmp_path, "CLIENT", "EXEC")) as ours,
    ):
        ours.connect("127.0.0.1", server.port)
        ours.send(market_data_request(md_req_id="md-1", symbols=["J200"]))
        snapshot = ours.receive(WAIT)
        assert snapshot is not None and snapshot.get(262) == b"md-1"
        bid, ask = (m.payload for m in FixConverter(venue="exec").convert(snapshot))
        assert isinstance(bid, MarketData) and isinstance(ask, MarketData)
        assert bid.kind is ask.kind is MarketDataKind.SNAPSHOT
        assert (bid.bid, bid.bid_size, ask.ask, ask.ask_size) == (25929.17, 3.0, 25930.05, 1.5)
        ours.logout()


def test_orders_built_from_engine_orders_round_trip(tmp_path: Path, acceptor: FixAcceptor) -> None:
    theirs = acceptor.session("CLIENT")
    converter = FixConverter(venue="exec")
    order = Order(order_id=7, symbol="MSFT", side=Side.SELL, quantity=5.0, price=1e-05)
    with FixSession(config(tmp_path, "CLIENT", "EXEC")) as ours:
        ours.connect("127.0.0.1", acceptor.port)
        ours.send(converter.new_order_single(order))
        received = theirs.receive(WAIT)
        assert received is not None and received.get(44) == b"0.00001"
        theirs_converter = FixConverter(venue="exec")
        (message,) = theirs_converter.convert(received)
        assert isinstance(message.payload, Order)
        assert (message.payload.order_id, message.payload.price) == (7, 1e-05)
        assert message.payload.status is OrderStatus.PENDING_NEW
        replacement = Order(order_id=7, symbol="MSFT", side=Side.SELL, quantity=4.0, price=2e-05)
        ours.send(
            converter.order_cancel_replace_request(replacement, cl_ord_id="8", orig_cl_ord_id="7")
        )
        received = theirs.receive(WAIT)
        assert received is not None and received.get(35) == b"G" and received.get(41) == b"7"
        (replaced,) = theirs_converter.convert(received)
        assert isinstance(replaced.payload, Order)
        assert replaced.payload.status is OrderStatus.PENDING_REPLACE
        assert (replaced.payload.order_id, replaced.payload.quantity) == (7, 4.0)
        assert replaced.payload.price == 2e-05
        ours.logout()


# Configuration and store


def test_config_reports_every_violation() -> None:
    with pytest.raises(ConfigError) as info:
        FixSessionConfig(
            sender_comp_id="", target_comp_id="EXEC", store_path="", begin_string="FIX.5.0",
            heartbeat_interval=0, logon_timeout=-1,
        )  # fmt: skip
    paths = [path for path, _ in info.value.violations]
    assert paths == [
        "sender_comp_id", "begin_string", "heartbeat_interval", "logon_timeout", "store_path"
    ]  # fmt: skip
    with pytest.raises(TypeError):
        FixSessionConfig(sender_comp_id="A", target_comp_id="B", store_path="s", hb=1)  # type: ignore[call-arg]


def test_store_persists_drops_torn_records_and_locks(tmp_path: Path) -> None:
    store = FixSessionStore(tmp_path, "FIX.4.4-A-B")
    store.record_sent(1, b"8=FIX.4.4\x01one")
    store.record_sent(2, b"8=FIX.4.4\x01two")
    store.set_next_target_seq(9)
    with pytest.raises(FixSessionError, match="open in another session"):
        FixSessionStore(tmp_path, "FIX.4.4-A-B")
    store.close()
    with open(tmp_path / "FIX.4.4-A-B.messages", "ab") as f:
        f.write(b"3 100\n8=FIX.4.4\x01tor")  # a crash in the middle of an append
    with open(tmp_path / "FIX.4.4-A-B.seqnums", "ab") as f:
        f.write(b"0000000000000000000")
    reopened = FixSessionStore(tmp_path, "FIX.4.4-A-B")
    assert (reopened.next_sender_seq, reopened.next_target_seq) == (3, 9)
    assert reopened.sent(1, 10) == [(1, b"8=FIX.4.4\x01one"), (2, b"8=FIX.4.4\x01two")]
    reopened.record_sent(3, b"three")
    assert reopened.sent(3, 3) == [(3, b"three")]
    reopened.reset()
    assert (reopened.next_sender_seq, reopened.next_target_seq, reopened.sent(1, 9)) == (1, 1, [])
    reopened.close()
