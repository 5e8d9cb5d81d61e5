"""market-intel benchmarks: LMAX Disruptor anchor, Python peer baselines and the runner.

Run from the repository root: `python -m benchmarks.run --quick`.
"""
