"""NautilusTrader baseline: ``MessageBus.publish`` to one Python handler, messages/s.

    python -m benchmarks.nautilus [--n N] [--reps R] [--payload object quote] [--json PATH]

What is measured: a producer loop in one Python thread calls ``publish`` once per pre-built
message; the bus delivers each message synchronously, in the same thread, to the one subscribed
handler, which counts it. Messages/s = n / (perf_counter_ns after the loop - before the loop).

- The bus: ``MessageBus(trader_id=TraderId("TRADER-001"), clock=TestClock())`` with every other
  argument at its default (new ``instance_id``, name "MessageBus", no serializer, no database, so
  nothing is serialized or published externally, ``MessageBusConfig()``), and no logging system
  initialised. One subscription: ``subscribe(topic="data.quotes", handler=counter.on_message)``,
  priority 0. A fresh bus per timed run; one untimed publish first resolves the topic's
  subscription cache (NautilusTrader does this lazily on the first publish to a topic).
- The handler: the bound method ``Counter.on_message`` of a ``__slots__`` class whose body is
  ``self.count += 1`` (the shape NautilusTrader actors subscribe with; a closure over a list cell
  costs the same within a few ns here, against ~1,500 ns per publish).
- Payloads, built before timing (n distinct objects, GC paused while building): "object" is a
  ``PlainMessage`` with four slots (seq, ts_ns, price, qty, like ``records.make_record``);
  "quote" is a real ``QuoteTick`` for BTCUSDT.BINANCE (ts_event = ts_init = a running ns stamp).
- Call styles (`CALLS`), measured round-robin within each repetition so a slow phase of the
  machine hits all of them: ``msgbus.publish(topic=..., msg=m)`` as documented; the same with
  ``publish = msgbus.publish`` bound to a local; and the local with positional arguments. The
  baseline (`BASELINE_CALL`) is the last one, the fastest legitimate way to call the public API
  from Python: no attribute lookup and no keyword parsing per call (Cython's ``publish_c`` is not
  reachable from Python).
- Verification: the handler's count and the bus's ``pub_count`` must both equal n, else
  `BenchFailure`.

`benches()` gives the two baseline rows for `benchmarks.run` (``fn(size) -> events/s``).
nautilus_trader is imported inside functions only: it takes ~1.5 s to import, and a missing
package must turn into a FAILED row rather than break the other benchmarks.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.harness import (
    NOISY_PCT,
    THROUGHPUT,
    Bench,
    CpuMeter,
    Noise,
    Result,
    write_json,
)
from benchmarks.records import BenchFailure

TOPOLOGY = "publish_message"  # must equal the topology of the "market-intel publish_message" row
TOPIC = "data.quotes"  # the loops below spell it as a literal (a constant load, as in user code)
PAYLOADS: tuple[str, ...] = ("object", "quote")
IMPLEMENTATIONS = {
    "object": "NautilusTrader MessageBus",
    "quote": "NautilusTrader MessageBus QuoteTick",
}
NOTES = {
    "object": "publish -> 1 Python handler, same thread; 4-slot plain object",
    "quote": "publish -> 1 Python handler, same thread; nautilus QuoteTick",
}
CONSTRUCTION = (
    'MessageBus(trader_id=TraderId("TRADER-001"), clock=TestClock()); defaults: new instance_id, '
    'name "MessageBus", serializer None, database None, config MessageBusConfig(); '
    'subscribe(topic="data.quotes", handler=counter.on_message), priority 0'
)
HANDLER = "bound method Counter.on_message of a __slots__ class: self.count += 1"


class PlainMessage:
    """The "object" payload: a small plain Python object, one per published message."""

    __slots__ = ("price", "qty", "seq", "ts_ns")

    def __init__(self, seq: int, ts_ns: int, price: float, qty: float) -> None:
        self.seq = seq
        self.ts_ns = ts_ns
        self.price = price
        self.qty = qty


class Counter:
    """The subscriber: counts what the bus delivers."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def on_message(self, msg: Any) -> None:
        self.count += 1


# ------------------------------------------------------------------------- the timed loops
# One function per call style; each times only its loop. The topic is a literal on purpose.


def _attribute_keywords(msgbus: Any, msgs: list[Any]) -> int:
    t0 = time.perf_counter_ns()
    for m in msgs:
        msgbus.publish(topic="data.quotes", msg=m)
    return time.perf_counter_ns() - t0


def _local_keywords(msgbus: Any, msgs: list[Any]) -> int:
    publish = msgbus.publish
    t0 = time.perf_counter_ns()
    for m in msgs:
        publish(topic="data.quotes", msg=m)
    return time.perf_counter_ns() - t0


def _local_positional(msgbus: Any, msgs: list[Any]) -> int:
    publish = msgbus.publish
    t0 = time.perf_counter_ns()
    for m in msgs:
        publish("data.quotes", m)
    return time.perf_counter_ns() - t0


CALLS: dict[str, tuple[Callable[[Any, list[Any]], int], str]] = {
    "attribute_keywords": (_attribute_keywords, 'msgbus.publish(topic="data.quotes", msg=m)'),
    "local_keywords": (_local_keywords, 'publish(topic="data.quotes", msg=m)'),
    "local_positional": (_local_positional, 'publish("data.quotes", m)'),
}
BASELINE_CALL = "local_positional"


# ------------------------------------------------------------------------- setup


def nautilus_version() -> str:
    import nautilus_trader

    return str(nautilus_trader.__version__)


def build_messages(payload: str, n: int) -> list[Any]:
    """n distinct messages of the given payload kind (GC paused while allocating them)."""
    if payload not in PAYLOADS:
        raise ValueError(f"payload={payload!r}: expected one of {PAYLOADS}")
    base = time.time_ns()
    enabled = gc.isenabled()
    gc.disable()  # a million tracked objects would trigger full collections while building
    try:
        if payload == "object":
            return [
                PlainMessage(i, base + i, 100.0 + (i & 255) * 0.01, float((i & 7) + 1))
                for i in range(n)
            ]
        from nautilus_trader.model.data import QuoteTick
        from nautilus_trader.model.identifiers import InstrumentId
        from nautilus_trader.model.objects import Price, Quantity

        instrument_id = InstrumentId.from_str("BTCUSDT.BINANCE")
        bid, ask = Price.from_str("50000.10"), Price.from_str("50000.20")
        bid_size, ask_size = Quantity.from_str("1.500"), Quantity.from_str("2.000")
        return [
            QuoteTick(
                instrument_id=instrument_id,
                bid_price=bid,
                ask_price=ask,
                bid_size=bid_size,
                ask_size=ask_size,
                ts_event=base + i,
                ts_init=base + i,
            )
            for i in range(n)
        ]
    finally:
        if enabled:
            gc.enable()


def make_bus() -> tuple[Any, Counter]:
    """A standalone MessageBus (see `CONSTRUCTION`) with one counting handler on `TOPIC`."""
    from nautilus_trader.common.component import MessageBus, TestClock
    from nautilus_trader.model.identifiers import TraderId

    msgbus = MessageBus(trader_id=TraderId("TRADER-001"), clock=TestClock())
    counter = Counter()
    msgbus.subscribe(topic=TOPIC, handler=counter.on_message)
    return msgbus, counter


def timed_run(msgs: list[Any], call: str) -> int:
    """Publish every message once on a fresh bus with the given call style; elapsed ns."""
    loop = CALLS[call][0]
    msgbus, counter = make_bus()
    msgbus.publish(TOPIC, msgs[0])  # untimed: resolves the topic's subscription cache
    count0, pub0 = counter.count, msgbus.pub_count
    elapsed = loop(msgbus, msgs)
    delivered, published = counter.count - count0, msgbus.pub_count - pub0
    if delivered != len(msgs) or published != len(msgs):
        raise BenchFailure(
            f"NautilusTrader MessageBus ({call}): handler saw {delivered}, bus counted "
            f"{published} publishes, expected {len(msgs)}"
        )
    return elapsed


# ------------------------------------------------------------------------- measuring


def measure_publish(n: int = 1_000_000, reps: int = 5, payload: str = "object") -> dict[str, Any]:
    """Measure every call style `reps` times (round-robin) after one warm-up at n // 4.

    Returns a dict: the setup (versions, construction, handler, payload), the baseline's median
    msgs/s and ns/msg, and per call style its code, per-repetition figures and medians, plus
    the foreign CPU seen during each timed run (harness.CpuMeter).
    """
    if n < 1 or reps < 1:
        raise ValueError(f"n={n}, reps={reps}: both must be >= 1")
    msgs = build_messages(payload, n)
    for call in CALLS:
        timed_run(msgs[: max(1, n // 4)], call)
    names = list(CALLS)
    elapsed: dict[str, list[int]] = {c: [] for c in names}
    noise: dict[str, list[Noise | None]] = {c: [] for c in names}
    meter = CpuMeter()
    for r in range(reps):
        for call in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            gc.collect()
            meter.start()
            elapsed[call].append(timed_run(msgs, call))
            noise[call].append(meter.stop())
    calls: dict[str, dict[str, Any]] = {}
    for call in names:
        rates = [n * 1e9 / ns for ns in elapsed[call]]
        per_msg = [ns / n for ns in elapsed[call]]
        foreign = [None if x is None else round(x.foreign_pct, 1) for x in noise[call]]
        calls[call] = {
            "code": CALLS[call][1],
            "msgs_per_s": rates,
            "ns_per_msg": per_msg,
            "median_msgs_per_s": statistics.median(rates),
            "median_ns_per_msg": statistics.median(per_msg),
            "foreign_cpu_pct": foreign,
            "steal_pct": [None if x is None else round(x.steal_pct, 1) for x in noise[call]],
            "flag": "NOISY" if any(f is not None and f >= NOISY_PCT for f in foreign) else "ok",
        }
    base = calls[BASELINE_CALL]
    return {
        "topology": TOPOLOGY,
        "implementation": IMPLEMENTATIONS[payload],
        "payload": payload,
        "payload_type": type(msgs[0]).__name__,
        "n": n,
        "reps": reps,
        "warmup_n": max(1, n // 4),
        "nautilus_version": nautilus_version(),
        "python": sys.version.split()[0],
        "construction": CONSTRUCTION,
        "handler": HANDLER,
        "baseline_call": BASELINE_CALL,
        "msgs_per_s": base["median_msgs_per_s"],
        "ns_per_msg": base["median_ns_per_msg"],
        "calls": calls,
    }


def _publish_rate(payload: str, n: int) -> float:
    msgs = build_messages(payload, n)
    return n * 1e9 / timed_run(msgs, BASELINE_CALL)


def publish_object(n: int) -> float:
    """The baseline row for benchmarks.run: plain objects, local positional call; msgs/s."""
    return _publish_rate("object", n)


def publish_quote(n: int) -> float:
    """The QuoteTick row for benchmarks.run: real QuoteTicks, local positional call; msgs/s."""
    return _publish_rate("quote", n)


def benches(topology: str = TOPOLOGY) -> list[Bench]:
    """The two baseline rows, for `benchmarks.run.registry()`."""
    return [
        Bench(
            topology,
            IMPLEMENTATIONS["object"],
            "throughput",
            publish_object,
            200_000,
            1_000_000,
            NOTES["object"],
        ),
        Bench(
            topology,
            IMPLEMENTATIONS["quote"],
            "throughput",
            publish_quote,
            200_000,
            1_000_000,
            NOTES["quote"],
        ),
    ]


# ------------------------------------------------------------------------- output


def to_results(measurement: dict[str, Any]) -> list[Result]:
    """One harness `Result` per call style (the baseline row carries the plain label)."""
    out = []
    for call, c in measurement["calls"].items():
        label = measurement["implementation"]
        if call != measurement["baseline_call"]:
            label += f" [{call}]"
        out.append(
            Result(
                measurement["topology"],
                label,
                THROUGHPUT,
                c["msgs_per_s"],
                c["median_msgs_per_s"],
                None,
                NOTES[measurement["payload"]] + f"; {c['code']}",
                {
                    "size": measurement["n"],
                    "reps": measurement["reps"],
                    "warmup": 1,
                    "foreign_cpu_pct": c["foreign_cpu_pct"],
                    "steal_pct": c["steal_pct"],
                    "flag": c["flag"],
                    "call": call,
                    "ns_per_msg": c["ns_per_msg"],
                    "median_ns_per_msg": c["median_ns_per_msg"],
                    "payload": measurement["payload_type"],
                    "handler": measurement["handler"],
                    "nautilus_version": measurement["nautilus_version"],
                },
            )
        )
    return out


def format_table(measurements: Sequence[dict[str, Any]]) -> str:
    """Medians per payload and call style, ratio to that payload's baseline, all reps."""
    head = ["payload", "call", "median", "ns/msg", "vs baseline", "reps (M msgs/s)", "flag"]
    body = []
    for m in measurements:
        base = m["msgs_per_s"]
        for call, c in m["calls"].items():
            star = " *" if call == m["baseline_call"] else ""
            body.append(
                [
                    m["payload_type"],
                    call + star,
                    f"{c['median_msgs_per_s'] / 1e6:.3f} M/s",
                    f"{c['median_ns_per_msg']:,.0f}",
                    f"{c['median_msgs_per_s'] / base:.2f}x",
                    " ".join(f"{v / 1e6:.3f}" for v in c["msgs_per_s"]),
                    c["flag"],
                ]
            )
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    first = measurements[0]
    lines = [
        f"== NautilusTrader {first['nautilus_version']} MessageBus.publish -> 1 Python handler  "
        f"[n={first['n']:,}, reps={first['reps']}; medians; * = baseline]"
    ]
    for row in [head, *body]:
        cells = [
            c.ljust(w) if i < 2 or i >= 5 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.nautilus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="messages per run (%(default)s)")
    ap.add_argument("--reps", type=int, default=5, help="measured repetitions (%(default)s)")
    ap.add_argument("--payload", nargs="+", choices=PAYLOADS, default=list(PAYLOADS))
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    t0 = time.perf_counter()
    measurements = [measure_publish(args.n, args.reps, p) for p in args.payload]
    print(format_table(measurements))
    print(f"bus: {CONSTRUCTION}")
    print(f"handler: {HANDLER}")
    if args.json:
        meta = {
            "mode": "nautilus",
            "reps": args.reps,
            "argv": list(sys.argv[1:] if argv is None else argv),
            "wall_s": round(time.perf_counter() - t0, 1),
            "nautilus_version": measurements[0]["nautilus_version"],
            "construction": CONSTRUCTION,
            "handler": HANDLER,
            "baseline_call": BASELINE_CALL,
        }
        results = [r for m in measurements for r in to_results(m)]
        print(f"results: {write_json(results, args.json, meta)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
