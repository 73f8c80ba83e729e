"""Timing helpers shared by the benchmark suites."""

from __future__ import annotations

import functools
import importlib
import resource
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


def sweep_timing(fn, repeats: int = 5) -> dict:
    """Median and best seconds of `fn()` over `repeats` runs after a warm-up call
    (compilation), and the process's peak RSS so far (MB)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "best_seconds": min(times),
            "max_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def xla_working_mb(jitted, *args, **kwargs) -> float:
    """Temporary buffers XLA allocates for one call of a compiled function, in MB."""
    compiled = jitted.lower(*args, **kwargs).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def optional_module(name: str):
    """Import `name` if installed (jax-moseq is never a dependency of moseq), else None."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def moseq_sweep(model, data: dict, state: dict, key) -> tuple:
    """`(sweep, xla_mb)`: `sweep()` runs one sweep of `model` as `GibbsScheduler.sweep` does
    (one compiled program per block, the model's frozen blocks held) on the laid-out data;
    `xla_mb()` compiles each block again for XLA's memory analysis (call it after measuring
    peak memory) and returns the largest working memory of those programs, in MB."""
    from moseq.core import gibbs, scheduler

    padded, state, _ = model._layout(data, state)
    frozen = model._check_frozen(None)
    blocks = model.bound_blocks

    def sweep():
        return gibbs.sweep(blocks, key, padded, state, frozen,
                           step=scheduler._compiled_resample_block)

    def xla_mb():
        return max(
            xla_working_mb(jax.jit(functools.partial(gibbs.resample_block, block)), key,
                           padded, state)
            for block in blocks if block.name not in frozen
        )

    return sweep, xla_mb


def moseq_run_seconds(model, data: dict, state: dict, num_sweeps: int = 10) -> float:
    """Seconds per sweep inside `model.run` (log-joint trace included), after a run that
    compiles."""
    model.run(2, data, state, num_sweeps, chunk_size=num_sweeps, progress=False)
    start = time.perf_counter()
    model.run(3, data, state, num_sweeps, chunk_size=num_sweeps, progress=False)
    return (time.perf_counter() - start) / num_sweeps
