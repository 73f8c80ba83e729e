"""Timing helpers shared by the benchmark suites."""

from __future__ import annotations

import importlib
import statistics
import time

import jax


def median_seconds(fn, *args, repeats: int = 7) -> float:
    """Median wall time of `fn(*args)` over `repeats` runs, after one untimed warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def best_seconds(functions: dict, repeats: int = 15) -> dict:
    """Best wall time of each `name: (fn, args)` after a warm-up call, the calls interleaved
    so that a busy machine slows every candidate alike."""
    for fn, args in functions.values():
        jax.block_until_ready(fn(*args))
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, (fn, args) in functions.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def optional_module(name: str):
    """Import `name` if installed (jax-moseq is never a dependency of moseq), else None."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
