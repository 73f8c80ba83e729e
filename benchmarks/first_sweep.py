"""Time to the first sweep: from building the keypoint-SLDS to the end of its first full
sweep, in a fresh process, cold (an empty persistent compilation cache, which it fills) and warm
(the cache that the cold process filled).

Workload: `benchmarks.keypoint_slds.workload()` (4 x 5,000 frames, 10 keypoints in 2-D,
K=100, D=10, L=3, float32), simulated once and saved, so no measured process holds the
simulation's programs. For moseq the time runs from `keypoint_slds(...)` through `init` to
the end of `run(1)` (one sweep of every block and its log joint); for jax-moseq (where it is
importable, in this Python or in `--jax-moseq-python`) from `init_model` to the end of one
`resample_model`.

Figures, each from its own subprocess:
- `total_s`: wall time from building the model to the end of the first sweep; `cpu_s` the
  process's CPU time (user + system) over the same span (steadier on a shared machine).
- `init_s`, `sweep_s`: wall time of the initialisation and of the first sweep, each
  without the compilation inside it; `compile_s`: tracing, lowering and XLA compilation
  (or reading programs back from the cache) over the whole span (JAX's monitoring events),
  and its parts `trace_s`, `lower_s` and `xla_s` (XLA's compilation or the read from the
  cache: a program read back is still traced and lowered, for its cache key).
- `programs`: the number of programs compiled (or read from the cache); `cache_hits`;
  `cache_mb` (cold): the size of the cache it wrote.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Only the measuring children import JAX or moseq (the jax-moseq child runs in a Python that
# may have neither moseq nor its dependencies).

_COMPILE_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
    "/jax/core/compile/backend_compile_duration": "xla_s",  # a read from the cache included
}


class CompileClock:
    """Seconds JAX spends tracing, lowering and compiling (or reading back) programs."""

    def __init__(self):
        from jax._src import monitoring  # the listener API JAX records compilation with

        self.seconds = 0.0
        self.parts = dict.fromkeys(_COMPILE_EVENTS.values(), 0.0)
        self.programs = 0
        self.cache_hits = 0
        monitoring.register_event_duration_secs_listener(self._on_duration)
        monitoring.register_event_listener(self._on_event)

    def _on_duration(self, event: str, duration: float, **_) -> None:
        if event in _COMPILE_EVENTS:
            self.seconds += duration
            self.parts[_COMPILE_EVENTS[event]] += duration
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            self.programs += 1

    def _on_event(self, event: str, **_) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            self.cache_hits += 1


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _use_cache(folder: str | None) -> None:
    import jax

    if folder:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _timed_phases(phases) -> dict:
    """Run `phases` ((name, fn) in order, each fn's result passed to the next) and time each,
    its compilation apart."""
    import jax

    clock = CompileClock()
    result, figures = None, {}
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    for name, fn in phases:
        start, compiled = time.perf_counter(), clock.seconds
        result = jax.block_until_ready(fn(result))
        figures[f"{name}_s"] = time.perf_counter() - start - (clock.seconds - compiled)
    figures.update(total_s=time.perf_counter() - started, cpu_s=_cpu_seconds() - cpu_started,
                   compile_s=clock.seconds, **clock.parts, programs=clock.programs,
                   cache_hits=clock.cache_hits)
    return figures


def measure_moseq(path: str) -> dict:
    from benchmarks.keypoint_slds import (
        ANTERIOR,
        JITTER,
        LATENT_DIM,
        NLAGS,
        NUM_STATES,
        POSTERIOR,
        load,
    )
    from moseq.models import keypoint_slds

    data = load(path)
    model = None

    def init(_):
        nonlocal model
        model = keypoint_slds(ANTERIOR, POSTERIOR, latent_dim=LATENT_DIM,
                              num_states=NUM_STATES, nlags=NLAGS, jitter=JITTER)
        return model.init(0, data)

    def sweep(state):
        return model.run(1, data, state, 1, progress=False)[0]

    return _timed_phases((("init", init), ("sweep", sweep)))


def measure_jax_moseq(path: str) -> dict:
    from benchmarks._timing import optional_module
    from benchmarks.keypoint_slds import JITTER, init_jax_moseq, load

    kpslds = optional_module("jax_moseq.models.keypoint_slds")
    if kpslds is None:
        return {}
    import jax.numpy as jnp

    data = {name: jnp.asarray(value) for name, value in load(path).items()}

    def sweep(model):
        return kpslds.resample_model(data, **model, jitter=JITTER,
                                     parallel_message_passing=False)

    return _timed_phases((("init", lambda _: init_jax_moseq(kpslds, data)), ("sweep", sweep)))


def _child(python: str, implementation: str, path: str, cache: str | None) -> dict:
    command = [python, "-m", "benchmarks.first_sweep", "--implementation", implementation,
               "--data", path]
    if cache:
        command += ["--cache", cache]
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent).stdout
    return json.loads(output.strip().splitlines()[-1])


def jax_moseq_available(python: str) -> bool:
    """Whether `python` can import jax-moseq."""
    return subprocess.run([python, "-c", "import jax_moseq"], capture_output=True).returncode == 0


def first_sweep_seconds(implementation: str = "moseq", *, data_path: str | None = None,
                        python: str | None = None) -> dict:
    """{"cold": figures, "warm": figures} of `implementation` ("moseq" or "jax-moseq") on the
    benchmark workload (or the .npz at `data_path`, written from a `workload()`-like dict),
    each in a fresh `python` process (default: this one's); the warm process reads the
    programs that the cold one wrote to a new, empty persistent cache. Figures: see the
    module's doc."""
    python = python or sys.executable
    with tempfile.TemporaryDirectory() as folder:
        if data_path is None:
            import numpy as np

            from benchmarks.keypoint_slds import workload

            data_path = str(Path(folder) / "keypoints.npz")
            np.savez(data_path, **workload())
        cache = str(Path(folder) / "jax-cache")
        cold = _child(python, implementation, data_path, cache)  # an empty cache: it fills it
        cold["cache_mb"] = sum(f.stat().st_size for f in Path(cache).rglob("*")
                               if f.is_file()) / 2**20
        warm = _child(python, implementation, data_path, cache)
    return {"cold": cold, "warm": warm}


def _describe(figures: dict) -> dict:
    return {"cpu_s": f"{figures['cpu_s']:.1f}", "init_s": f"{figures['init_s']:.1f}",
            "compile_s": f"{figures['compile_s']:.1f}", "sweep_s": f"{figures['sweep_s']:.2f}",
            "programs": figures["programs"], "cache_hits": figures["cache_hits"],
            **({"cache_mb": f"{figures['cache_mb']:.0f}"} if "cache_mb" in figures else {})}


def run(report, jax_moseq_python: str | None = None) -> None:
    import numpy as np

    from benchmarks.keypoint_slds import workload

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "keypoints.npz")
        np.savez(path, **workload())
        results = {"moseq": first_sweep_seconds("moseq", data_path=path)}
        theirs = jax_moseq_python or sys.executable
        if jax_moseq_available(theirs):
            results["jax-moseq"] = first_sweep_seconds("jax-moseq", data_path=path,
                                                       python=theirs)
    for implementation, figures in results.items():
        for cache in ("cold", "warm"):
            extra = _describe(figures[cache])
            if implementation == "moseq" and "jax-moseq" in results:
                ratio = figures[cache]["total_s"] / results["jax-moseq"][cache]["total_s"]
                extra["of_jax_moseq"] = f"{ratio:.2f}x"
            report(f"first_sweep: {implementation}, {cache} (build, init, 1 sweep)",
                   figures[cache]["total_s"], **extra)
    if "jax-moseq" not in results:
        report("first_sweep: jax-moseq not importable (--jax-moseq-python), no comparison",
               None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--implementation", choices=("moseq", "jax-moseq"), required=True)
    parser.add_argument("--data", required=True, help="an .npz written from workload()")
    parser.add_argument("--cache", help="a persistent compilation cache folder (default: none)")
    args = parser.parse_args()
    with contextlib.suppress(KeyError):
        del os.environ["JAX_COMPILATION_CACHE_DIR"]
    _use_cache(args.cache)
    measure = measure_moseq if args.implementation == "moseq" else measure_jax_moseq
    print(json.dumps(measure(args.data)))
