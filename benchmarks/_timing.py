"""Timing helpers shared by the benchmark suites."""

from __future__ import annotations

import importlib
import os
import statistics
import threading
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


def peak_rss_mb() -> float:
    """The process's highest resident set size so far, in MB (Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def optional_module(name: str):
    """Import `name` if installed (jax-moseq is never a dependency of moseq), else None."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def resident_mb() -> float:
    """Current resident set size of this process, in MB (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Highest resident set size reached inside the `with` block, above its level at entry,
    sampled every millisecond by a background thread."""

    def __enter__(self):
        self.start = self.peak = resident_mb()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, resident_mb())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, resident_mb())
        self.growth_mb = self.peak - self.start
