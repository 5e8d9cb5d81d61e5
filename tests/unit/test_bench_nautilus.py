"""The NautilusTrader MessageBus baseline (benchmarks/nautilus.py) runs and reports sane fields.

Smoke test only: tiny sizes, no timing assertions.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

nautilus_trader = pytest.importorskip("nautilus_trader")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level directory, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import nautilus  # noqa: E402
from benchmarks.harness import load_json  # noqa: E402
from benchmarks.records import BenchFailure  # noqa: E402


@pytest.mark.parametrize("payload", ["object", "quote"])
def test_measure_publish_reports_every_call_style(payload: str) -> None:
    m = nautilus.measure_publish(n=200, reps=3, payload=payload)
    assert m["n"] == 200 and m["reps"] == 3 and m["payload"] == payload
    assert m["payload_type"] == ("PlainMessage" if payload == "object" else "QuoteTick")
    assert m["nautilus_version"] == nautilus_trader.__version__
    assert m["implementation"] == nautilus.IMPLEMENTATIONS[payload]
    assert set(m["calls"]) == set(nautilus.CALLS)
    assert m["baseline_call"] in m["calls"]
    for c in m["calls"].values():
        assert len(c["msgs_per_s"]) == len(c["ns_per_msg"]) == 3
        assert all(v > 0 and math.isfinite(v) for v in c["msgs_per_s"] + c["ns_per_msg"])
        assert len(c["foreign_cpu_pct"]) == 3 and c["flag"] in ("ok", "NOISY")
        # odd reps: the median of ns/msg is the reciprocal of the median of msgs/s
        assert c["median_ns_per_msg"] == pytest.approx(1e9 / c["median_msgs_per_s"])
    base = m["calls"][m["baseline_call"]]
    assert (m["msgs_per_s"], m["ns_per_msg"]) == (
        base["median_msgs_per_s"],
        base["median_ns_per_msg"],
    )


def test_the_bus_delivers_every_message_to_the_one_handler() -> None:
    msgbus, counter = nautilus.make_bus()
    msgs = nautilus.build_messages("quote", 10)
    for m in msgs:
        msgbus.publish(nautilus.TOPIC, m)
    assert counter.count == msgbus.pub_count == 10
    assert len({m.ts_event for m in msgs}) == 10  # distinct messages


def test_a_handler_that_misses_messages_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def lossy(msgbus: Any, msgs: list[Any]) -> int:
        for m in msgs[1:]:
            msgbus.publish(nautilus.TOPIC, m)
        return 1

    monkeypatch.setitem(nautilus.CALLS, "lossy", (lossy, "drops the first message"))
    with pytest.raises(BenchFailure, match="expected 5"):
        nautilus.timed_run(nautilus.build_messages("object", 5), "lossy")


def test_registry_rows_return_a_rate() -> None:
    rows = nautilus.benches()
    assert [b.implementation for b in rows] == list(nautilus.IMPLEMENTATIONS.values())
    assert all(b.topology == nautilus.TOPOLOGY and b.kind == "throughput" for b in rows)
    for b in rows:
        rate = b.fn(100)
        assert isinstance(rate, float) and rate > 0


def test_cli_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nautilus.json"
    assert (
        nautilus.main(["--n", "100", "--reps", "1", "--payload", "object", "--json", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "MessageBus.publish" in printed and "local_positional *" in printed
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["meta"]["nautilus_version"] == nautilus_trader.__version__
    rows = load_json(out)
    assert {r.implementation for r in rows} >= {nautilus.IMPLEMENTATIONS["object"]}
    assert len(rows) == len(nautilus.CALLS)
    assert all(r.median > 0 and r.params["size"] == 100 for r in rows)
