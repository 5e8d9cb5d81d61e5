"""Our FIX sessions against an independent FIX engine: Debian's QuickFIX example engines.

``executor`` (FIX 4.4) fills every limit order; ``ordermatch`` (FIX 4.2 only: its handlers are
the FIX42 ones) matches orders between counterparties. ``scripts/quickfix.sh`` finds or
installs them (apt-get, as root) and unpacks the prebuilt binaries; the tests write their
settings, start them as subprocesses on a free port, and read their screen log.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from market_intel.adapters.fix.convert import FixConverter, FixMessage
from market_intel.adapters.fix.session import FixSession, FixSessionConfig, FixSessionState
from market_intel.adapters.normalize import to_float
from market_intel.enums import OrderStatus, Side, TimeInForce
from market_intel.messages import CoreMessage, Order, Trade

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0


@pytest.fixture(scope="session")
def quickfix_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of the unpacked example engines, installing QuickFIX if needed."""
    dest = tmp_path_factory.mktemp("quickfix")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "quickfix.sh"), str(dest)],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    if result.returncode == 2:  # the script's code for "no apt-get, or not root and no sudo"
        pytest.skip(f"QuickFIX cannot be installed here: {result.stderr.strip()}")
    assert result.returncode == 0, f"scripts/quickfix.sh failed:\n{result.stderr[-2000:]}"
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class QuickFixEngine:
    """A QuickFIX example engine run as a subprocess with its own settings and store."""

    def __init__(self, binary: Path, workdir: Path, sender: str, begin: str, targets: list[str]):
        self.port = free_port()
        self.log = workdir / f"{binary.name}.log"
        settings = workdir / f"{binary.name}.cfg"
        sessions = "".join(f"[SESSION]\nTargetCompID={target}\n" for target in targets)
        settings.write_text(
            "[DEFAULT]\nConnectionType=acceptor\n"
            f"SenderCompID={sender}\nBeginString={begin}\n"
            f"FileStorePath={workdir / 'qf-store'}\n"
            "StartTime=00:00:00\nEndTime=00:00:00\nUseDataDictionary=N\n"
            f"SocketAcceptPort={self.port}\n" + sessions
        )
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(binary), str(settings)], cwd=workdir, stdin=subprocess.PIPE,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            assert self.process.poll() is None, f"engine exited:\n{self.log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def count(self, session: str, event: str) -> int:
        """How often the screen log shows ``event`` for ``session`` (``EXEC->CLIENT``)."""
        return self.text().count(f"{session}, event>\n  ({event})")

    def wait_count(self, session: str, event: str, at_least: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.count(session, event) < at_least:
            assert time.monotonic() < deadline, f"no {event!r} in the log:\n{self.text()}"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(b"#quit\n")  # ordermatch reads commands
                self.process.stdin.flush()
            except OSError:
                pass
            self.process.terminate()  # executor waits for a signal
        self.process.wait(WAIT)
        if self.process.stdin is not None:
            self.process.stdin.close()


@pytest.fixture
def executor(quickfix_bin: Path, tmp_path: Path) -> Iterator[QuickFixEngine]:
    engine = QuickFixEngine(quickfix_bin / "executor", tmp_path, "EXEC", "FIX.4.4", ["CLIENT"])
    yield engine
    engine.stop()


def client(
    tmp_path: Path, sender: str = "CLIENT", target: str = "EXEC", **extra: str
) -> FixSession:
    return FixSession(
        FixSessionConfig(
            sender_comp_id=sender, target_comp_id=target, store_path=tmp_path / f"ours-{sender}",
            heartbeat_interval=30, logout_timeout=3.0, **extra,  # type: ignore[arg-type]
        )
    )  # fmt: skip


def receive(session: FixSession, count: int) -> list[FixMessage]:
    messages = [session.receive(WAIT) for _ in range(count)]
    assert all(m is not None for m in messages), f"{messages}"
    return [m for m in messages if m is not None]


def payloads(messages: list[CoreMessage]) -> tuple[list[Order], list[Trade]]:
    orders = [m.payload for m in messages if isinstance(m.payload, Order)]
    trades = [m.payload for m in messages if isinstance(m.payload, Trade)]
    return orders, trades


def test_executor_fills_arrive_as_orders_and_trades_with_exact_prices(
    tmp_path: Path, executor: QuickFixEngine
) -> None:
    converter = FixConverter(venue="quickfix")
    book = [("101.25", "100"), ("0.1", "3"), ("12345.678901", "2.5"), ("7", "1")]
    with client(tmp_path) as ours:
        ours.connect("127.0.0.1", executor.port)
        for i, (price, quantity) in enumerate(book, 1):
            order = Order(
                order_id=i, symbol="MSFT", side=Side.BUY, quantity=to_float(Decimal(quantity)),
                price=to_float(Decimal(price)), time_in_force=TimeInForce.DAY,
            )  # fmt: skip
            ours.send(converter.new_order_single(order))
        reports = receive(ours, len(book))
        for report, (price, _) in zip(reports, book, strict=True):
            assert Decimal(report.get(31).decode()) == Decimal(price)  # type: ignore[union-attr]
        converted = [m for report in reports for m in converter.convert(report)]
        orders, trades = payloads(converted)
        assert [o.order_id for o in orders] == [t.order_id for t in trades] == [1, 2, 3, 4]
        assert all(o.status is OrderStatus.FILLED for o in orders)
        assert [(t.price, t.quantity) for t in trades] == [
            (to_float(Decimal(p)), to_float(Decimal(q))) for p, q in book
        ]
        assert [o.filled_quantity for o in orders] == [o.quantity for o in orders]
        assert [o.price for o in orders] == [t.price for t in trades]
        assert len({t.trade_id for t in trades}) == 4
        ours.logout()
        assert ours.state is FixSessionState.DISCONNECTED and ours.error is None
    executor.wait_count("EXEC->CLIENT", "Sending logout response", 1)


def test_restarts_and_gaps_keep_sequence_continuity_with_the_executor(
    tmp_path: Path, executor: QuickFixEngine
) -> None:
    converter = FixConverter(venue="quickfix")

    def order(i: int) -> FixMessage:
        return converter.new_order_single(
            Order(order_id=i, symbol="IBM", side=Side.SELL, quantity=10.0, price=99.5 + i)
        )

    first = client(tmp_path)
    first.connect("127.0.0.1", executor.port)
    first.send(order(1))
    receive(first, 1)
    first.disconnect()  # killed: no Logout
    first.close()
    executor.wait_count("EXEC->CLIENT", "Disconnecting", 1)

    with client(tmp_path) as ours:
        ours.connect("127.0.0.1", executor.port)  # the next numbers: accepted as they are
        ours.send(order(2))
        (fill,) = receive(ours, 1)
        assert ours.statistics().resend_requests_received == 0
        assert ours.statistics().resend_requests_sent == 0
        assert "MsgSeqNum too low" not in executor.text()

        # Lose the last fill on our side: we ask again and the executor resends it.
        ours.disconnect()
        ours.store.set_next_target_seq(ours.next_target_seq - 1)
        executor.wait_count("EXEC->CLIENT", "Disconnecting", 2)
        ours.connect("127.0.0.1", executor.port)
        (again,) = receive(ours, 1)
        assert again.get(43) == b"Y" and again.get(17) == fill.get(17)
        assert ours.statistics().resend_requests_sent == 1
        _, (trade,) = payloads(converter.convert(again))
        assert trade.price == 101.5 and trade.quantity == 10.0

        # Skip three of our numbers: the executor asks for them and takes a gap fill.
        ours.disconnect()
        ours.store.set_next_sender_seq(ours.next_sender_seq + 3)
        executor.wait_count("EXEC->CLIENT", "Disconnecting", 3)
        ours.connect("127.0.0.1", executor.port)
        deadline = time.monotonic() + WAIT
        while ours.statistics().gap_fills_sent == 0:  # answered the executor's ResendRequest
            assert time.monotonic() < deadline, f"no ResendRequest:\n{executor.text()}"
            time.sleep(0.01)
        ours.send(order(3))
        (third,) = receive(ours, 1)
        assert third.get(43) is None and third.get(31) == b"102.5"
        stats = ours.statistics()
        assert stats.resend_requests_received == 1 and stats.gap_fills_sent >= 1
        assert stats.rejects_received == 0
        ours.logout()
        assert ours.error is None
    assert "MsgSeqNum too low" not in executor.text()


def test_ordermatch_crosses_two_orders(quickfix_bin: Path, tmp_path: Path) -> None:
    engine = QuickFixEngine(
        quickfix_bin / "ordermatch", tmp_path, "ORDERMATCH", "FIX.4.2", ["BUYER", "SELLER"]
    )
    try:
        converter = FixConverter(venue="ordermatch")
        buyer = client(tmp_path, "BUYER", "ORDERMATCH", begin_string="FIX.4.2")
        seller = client(tmp_path, "SELLER", "ORDERMATCH", begin_string="FIX.4.2")
        with buyer, seller:
            buyer.connect("127.0.0.1", engine.port)
            seller.connect("127.0.0.1", engine.port)
            for session, oid, side in ((buyer, 11, Side.BUY), (seller, 12, Side.SELL)):
                resting = Order(
                    order_id=oid, symbol="IBM", side=side, quantity=100.0, price=10.05,
                    time_in_force=TimeInForce.DAY,  # ordermatch takes Day orders only
                )  # fmt: skip
                session.send(converter.new_order_single(resting))
            for session, oid, side in ((buyer, 11, Side.BUY), (seller, 12, Side.SELL)):
                reports = receive(session, 2)
                orders, trades = payloads([m for r in reports for m in converter.convert(r)])
                assert [o.status for o in orders] == [OrderStatus.NEW, OrderStatus.FILLED]
                assert all(o.order_id == oid for o in orders)
                ((price, quantity, trade_side),) = [(t.price, t.quantity, t.side) for t in trades]
                assert (price, quantity, trade_side) == (10.05, 100.0, side)
                assert reports[1].get(31) == b"10.05"
            buyer.logout()
            seller.logout()
            assert buyer.error is None and seller.error is None
    finally:
        engine.stop()
    assert engine.process.returncode is not None
    assert os.path.exists(engine.log)
