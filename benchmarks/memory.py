"""Memory slope: peak resident memory of a fit against the number of frames.

`python -m benchmarks memory` runs, for the AR-HMM and the keypoint-SLDS (K=100 states,
D=10, L=3, float32; the keypoint-SLDS on 10 keypoints in 2-D), a fit of 80k, 320k and
1.28M frames, each in a fresh subprocess: `init`, then `run` of one sweep (compiles), then
`run` of one timed sweep (the log-joint trace included). The recordings are 5,000 frames
long (the 4 x 5,000-frame workload of `benchmarks.arhmm` / `benchmarks.keypoint_slds`,
tiled), so more frames means more recordings. Printed per size: the peak RSS (getrusage
ru_maxrss, which a loaded machine does not change), the seconds per sweep (wall and process
CPU time, since wall time is noisy on a shared machine); and per model the slope of peak
RSS between the smallest and the largest size, in GB per million frames.

`memory_slope(model, sizes)` is the same measurement as a function (for other suites).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("arhmm", "keypoint_slds")
SIZES = (80_000, 320_000, 1_280_000)
FRAMES_PER_RECORDING = 5_000


def _base_workload(model: str) -> dict:
    """The 4 x 5,000-frame workload of the model's benchmark suite, as NumPy arrays."""
    if model == "arhmm":
        from benchmarks import arhmm

        base = arhmm.workload()
        return {name: np.asarray(value)[:4] for name, value in base.items()}
    from benchmarks import keypoint_slds

    return keypoint_slds.workload()


def _build(model: str, chunk_frames):
    from benchmarks import keypoint_slds as kp

    extra = {} if chunk_frames is None else {"chunk_frames": chunk_frames}
    if model == "arhmm":
        from moseq.models import arhmm

        return arhmm(10, num_states=100, nlags=3, **extra)
    from moseq.models import keypoint_slds

    return keypoint_slds(kp.ANTERIOR, kp.POSTERIOR, latent_dim=kp.LATENT_DIM,
                         num_states=kp.NUM_STATES, nlags=kp.NLAGS, jitter=kp.JITTER, **extra)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(model: str, num_frames: int, path: str, chunk_frames=None) -> dict:
    """Peak RSS (MB) and seconds per sweep of a fit of `num_frames` frames, in this process."""
    import jax

    with np.load(path) as arrays:
        base = {name: arrays[name] for name in arrays.files}
    copies = -(-num_frames // (base["mask"].shape[0] * base["mask"].shape[1]))
    data = {name: np.concatenate([value] * copies)[: num_frames // FRAMES_PER_RECORDING]
            for name, value in base.items()}
    scheduler = _build(model, chunk_frames)
    state = jax.block_until_ready(scheduler.init(0, data))
    state, _ = scheduler.run(1, data, state, 1, progress=False)
    wall, cpu = time.perf_counter(), _cpu_seconds()
    state, _ = scheduler.run(2, data, state, 1, start_sweep=1, progress=False)
    jax.block_until_ready(state)
    return {"model": model, "frames": num_frames,
            "seconds_per_sweep": time.perf_counter() - wall,
            "cpu_seconds_per_sweep": _cpu_seconds() - cpu,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def memory_slope(model: str, sizes=SIZES, chunk_frames=None) -> dict:
    """Peak RSS per size (each in a fresh subprocess) and its slope between the smallest
    and the largest size: {"sizes": [...], "peak_mb": [...], "seconds_per_sweep": [...],
    "cpu_seconds_per_sweep": [...], "gb_per_million_frames": float}."""
    if model not in MODELS:
        raise ValueError(f"`model` must be one of {MODELS}; got {model!r}.")
    sizes = sorted(int(size) for size in sizes)
    if len(sizes) < 2 or sizes[0] < FRAMES_PER_RECORDING:
        raise ValueError(f"`sizes` must hold at least two sizes of >= {FRAMES_PER_RECORDING} "
                         f"frames; got {sizes}.")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "workload.npz")
        np.savez(path, **_base_workload(model))
        for size in sizes:
            command = [sys.executable, "-m", "benchmarks.memory", "--model", model,
                       "--frames", str(size), "--data", path]
            if chunk_frames is not None:
                command += ["--chunk-frames", str(chunk_frames)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
    peaks = [r["peak_mb"] for r in results]
    slope = (peaks[-1] - peaks[0]) / 1024 / ((sizes[-1] - sizes[0]) / 1e6)
    return {"sizes": sizes, "peak_mb": peaks,
            "seconds_per_sweep": [r["seconds_per_sweep"] for r in results],
            "cpu_seconds_per_sweep": [r["cpu_seconds_per_sweep"] for r in results],
            "gb_per_million_frames": slope}


def run(report) -> None:
    for model in MODELS:
        result = memory_slope(model)
        for size, peak, wall, cpu in zip(result["sizes"], result["peak_mb"],
                                         result["seconds_per_sweep"],
                                         result["cpu_seconds_per_sweep"], strict=True):
            report(f"memory: {model} {size:,} frames, one sweep", wall,
                   peak_mb=f"{peak:.0f}", cpu_s=f"{cpu:.2f}")
        report(f"memory: {model} slope of peak RSS", None,
               gb_per_million_frames=f"{result['gb_per_million_frames']:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--data", required=True, help="an .npz of the model's base workload")
    parser.add_argument("--chunk-frames", type=int, default=None)
    args = parser.parse_args()
    print(json.dumps(measure(args.model, args.frames, args.data, args.chunk_frames)))
