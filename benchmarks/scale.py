"""Scaling: time per sweep, time to the first sweep and peak memory at growing data sizes.

`python -m benchmarks scale` (or `python -m benchmarks.scale --sizes 1000000 10000000` on a
GPU) runs the AR-HMM (K=100, D=10, L=3) and the keypoint-SLDS (10 keypoints in 2-D, K=100,
D=10, L=3) on recordings of 5,000 frames, as many as a size needs, float32, on the default
JAX device. Each (model, size) runs in a fresh process, so nothing is cached and the peak
memory is that fit's alone. Per line:

- `first_s`: from constructing the model (data already in memory) to the end of the first
  full sweep: data preparation, init, compilation and the sweep; `init_s` is its init part.
- `s/sweep`: for moseq, one `model.run` of `--sweeps` further sweeps over their number, as a
  fit makes them (the log joint traced, NaN flags read once); `sweep_s` the median of as many
  bare `model.sweep` calls (so `run_overhead` is what `run` adds). The two alternate over
  `TIMING_ROUNDS` rounds and each is the median of its rounds, so that a machine whose speed
  drifts (a shared or warming CPU) slows both alike. For jax-moseq, the median
  of as many `resample_model` calls, leaving out calls that compile (jax-moseq compiles
  again in its second and third sweeps, as its state's types settle).
- `rss_mb`: the process's peak resident set size; `data_mb` its resident size once JAX is
  imported and the data are made. On a GPU also `device_mb`, the device's peak bytes in use
  (`memory_stats()`). `estimate_mb`: what `moseq.core.memory.estimate_memory` (the check
  `moseq fit` makes before compiling) expected the fit to need.
- `cpu_s`: the process's user + system CPU time (steadier than wall time on a shared machine).

`--chunk-frames N` sets moseq's `chunk_frames` (default: sized from the device's memory), to
compare the memory of other chunk sizes (a chunk of every frame is the unchunked sweep).

After the sizes of a model, `slope` is the least-squares slope of peak memory against frames
(device memory on a GPU, else RSS), in GB per million frames. jax-moseq is measured at the
sizes in `--jax-moseq-sizes` (default: the smallest) where it is importable by
`python -m benchmarks --jax-moseq-python PYTHON` (default: this Python); moseq never imports
it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODELS = ("arhmm", "keypoint_slds")
FRAMES_PER_RECORDING = 5_000
NUM_STATES, LATENT_DIM, NLAGS, NUM_KEYPOINTS = 100, 10, 3, 10
DEFAULT_SIZES = (80_000, 320_000, 1_280_000)
HYPERPARAMETERS = {"alpha": 5.7, "kappa": 1e6, "gamma": 1e3}  # jax-moseq's, as moseq's


def workload(model: str, frames: int, seed: int = 0) -> dict:
    """float32 data of about `frames` frames in recordings of 5,000 (the count rounded up),
    made one recording at a time so that only the data stay resident: smooth random latent
    trajectories (`x` for the AR-HMM), or 10 keypoints made from them by a fixed random pose
    map, turned by a slowly drifting heading, with confidences in (0, 1]."""
    num_recordings = -(-frames // FRAMES_PER_RECORDING)
    rng = np.random.default_rng(seed)
    shape = (num_recordings, FRAMES_PER_RECORDING)
    mask = np.ones(shape, np.float32)
    if model == "arhmm":
        x = np.empty((*shape, LATENT_DIM), np.float32)
        for n in range(num_recordings):
            walk = np.cumsum(rng.normal(size=(FRAMES_PER_RECORDING, LATENT_DIM)), axis=0)
            x[n] = (walk - walk.mean(0)) / walk.std(0)
        return {"x": x, "mask": mask}
    pose_map = rng.normal(size=(LATENT_DIM, NUM_KEYPOINTS, 2))
    Y = np.empty((*shape, NUM_KEYPOINTS, 2), np.float32)
    conf = np.empty((*shape, NUM_KEYPOINTS), np.float32)
    for n in range(num_recordings):
        walk = np.cumsum(0.1 * rng.normal(size=(FRAMES_PER_RECORDING, LATENT_DIM)), axis=0)
        latents = (walk - walk.mean(0)) / walk.std(0)
        pose = np.einsum("td,dkc->tkc", latents, pose_map)
        pose[:, :, 0] += np.linspace(3.0, -3.0, NUM_KEYPOINTS)  # a body from front to back
        heading = np.cumsum(0.05 * rng.normal(size=FRAMES_PER_RECORDING))
        rotation = np.stack([np.stack([np.cos(heading), -np.sin(heading)], -1),
                             np.stack([np.sin(heading), np.cos(heading)], -1)], -2)
        centroid = np.cumsum(0.2 * rng.normal(size=(FRAMES_PER_RECORDING, 1, 2)), axis=0)
        Y[n] = np.einsum("tij,tkj->tki", rotation, pose) + centroid
        Y[n] += 0.1 * rng.normal(size=Y[n].shape)
        conf[n] = np.clip(rng.beta(5.0, 1.0, size=(FRAMES_PER_RECORDING, NUM_KEYPOINTS)),
                          0.01, 1.0)
    return {"Y": Y, "conf": conf, "mask": mask}


def _resident_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _device_peak_mb() -> float | None:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


MAX_WARMUP_SWEEPS = 5
"""At most this many calls that compile are left out of a sweep timing (warm-up)."""
TIMING_ROUNDS = 3
"""Rounds of (one moseq `run`, as many bare sweeps): each figure is the median of its rounds."""


@functools.cache
def _compile_clock():
    """The process's one `CompileClock` (each registers JAX listeners for good)."""
    from benchmarks.first_sweep import CompileClock

    return CompileClock()


def _timed_sweeps(sweep, state, num_sweeps: int) -> tuple[float, object]:
    """Median seconds of `num_sweeps` calls of `sweep(i, state) -> state` once a call
    compiles nothing (jax-moseq compiles again in its second and third sweeps, as its state's
    types settle; at most `MAX_WARMUP_SWEEPS` such calls are left out), and the state."""
    import jax

    clock, times, warmups = _compile_clock(), [], 0
    while len(times) < num_sweeps:
        programs, start = clock.programs, time.perf_counter()
        state = jax.block_until_ready(sweep(len(times) + warmups + 1, state))
        if clock.programs > programs and warmups < MAX_WARMUP_SWEEPS:
            warmups += 1
            continue
        times.append(time.perf_counter() - start)
    return float(np.median(times)), state


def measure_moseq(model_name: str, frames: int, num_sweeps: int,
                  chunk_frames: int | None = None) -> dict:
    import jax

    import moseq  # noqa: F401  (first: it configures XLA before JAX starts)
    from moseq.core.memory import estimate_memory
    from moseq.models import arhmm, keypoint_slds

    data = workload(model_name, frames)
    data_mb = _resident_mb()
    options = {**HYPERPARAMETERS, "chunk_frames": chunk_frames}
    start = time.perf_counter()
    if model_name == "arhmm":
        model = arhmm(LATENT_DIM, num_states=NUM_STATES, nlags=NLAGS, **options)
    else:
        model = keypoint_slds((0,), (NUM_KEYPOINTS - 1,), latent_dim=LATENT_DIM,
                              num_states=NUM_STATES, nlags=NLAGS, **options)
    prepared = model.prepare(data)
    estimate_mb = estimate_memory(model, prepared).total / 2**20
    state = jax.block_until_ready(model.init(0, prepared))
    init_s = time.perf_counter() - start

    state = jax.block_until_ready(model.run(0, prepared, state, 1, progress=False)[0])
    first_s = time.perf_counter() - start
    # As a fit makes them: one `run` of every sweep (log joint traced, NaN flags read once),
    # in rounds alternating with as many bare sweeps, so that both meet the same machine.
    run_s, sweep_s = [], []
    for _ in range(TIMING_ROUNDS):
        run_start = time.perf_counter()
        jax.block_until_ready(model.run(0, prepared, state, num_sweeps, start_sweep=1,
                                        chunk_size=num_sweeps, progress=False))
        run_s.append((time.perf_counter() - run_start) / num_sweeps)
        sweep_s.append(_timed_sweeps(lambda i, state: model.sweep(i, prepared, state), state,
                                     num_sweeps)[0])
    return {"first_s": first_s, "init_s": init_s, "seconds": float(np.median(run_s)),
            "sweep_s": float(np.median(sweep_s)), "data_mb": data_mb,
            "estimate_mb": estimate_mb}


def measure_jax_moseq(model_name: str, frames: int, num_sweeps: int) -> dict:
    try:
        import jax
        import jax.numpy as jnp
        from jax_moseq.models import arhmm, keypoint_slds
    except ImportError:
        return {}
    data = {k: jnp.asarray(v) for k, v in workload(model_name, frames).items()}
    data_mb = _resident_mb()
    trans = {"num_states": NUM_STATES, **HYPERPARAMETERS}
    ar = {"latent_dim": LATENT_DIM, "nlags": NLAGS, "S_0_scale": 0.01, "K_0_scale": 10.0}
    start = time.perf_counter()
    if model_name == "arhmm":
        model = arhmm.init_model(data, seed=jax.random.PRNGKey(0), trans_hypparams=trans,
                                 ar_hypparams=ar)

        def sweep(i, model):
            return arhmm.resample_model(data, **model)
    else:
        model = keypoint_slds.init_model(
            data, seed=jax.random.PRNGKey(0), anterior_idxs=jnp.array([0]),
            posterior_idxs=jnp.array([NUM_KEYPOINTS - 1]),
            error_estimator={"slope": -0.5, "intercept": 0.25}, trans_hypparams=trans,
            ar_hypparams=ar, obs_hypparams={"nu_sigma": 1e5, "sigmasq_0": 0.1, "nu_s": 5,
                                            "sigmasq_C": 0.1},
            cen_hypparams={"sigmasq_loc": 0.5})

        def sweep(i, model):
            return keypoint_slds.resample_model(data, **model, jitter=1e-3,
                                                parallel_message_passing=False)
    model = jax.block_until_ready(model)
    init_s = time.perf_counter() - start
    model = jax.block_until_ready(sweep(0, model))
    first_s = time.perf_counter() - start
    seconds, _ = _timed_sweeps(sweep, model, num_sweeps)
    return {"first_s": first_s, "init_s": init_s, "seconds": seconds, "data_mb": data_mb}


def measure(implementation: str, model_name: str, frames: int, num_sweeps: int,
            chunk_frames: int | None = None) -> dict:
    """One (implementation, model, size) in this process: timings and peak memory
    (`chunk_frames`: moseq's; jax-moseq has none)."""
    if implementation == "moseq":
        result = measure_moseq(model_name, frames, num_sweeps, chunk_frames)
    else:
        result = measure_jax_moseq(model_name, frames, num_sweeps)
    if not result:
        return result
    usage = resource.getrusage(resource.RUSAGE_SELF)
    import jax

    return {**result, "rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
            "device_mb": _device_peak_mb(), "platform": jax.devices()[0].platform,
            "frames": -(-frames // FRAMES_PER_RECORDING) * FRAMES_PER_RECORDING}


def measure_in_subprocess(implementation: str, model_name: str, frames: int, num_sweeps: int,
                          python: str = sys.executable, timeout: float | None = None,
                          chunk_frames: int | None = None) -> dict:
    """`measure` in a fresh process of `python` (run from the repository root); {} when that
    implementation is not importable there. A failure (e.g. out of memory) is returned as
    {"error": the last line of its output}, and so is a run past `timeout` seconds."""
    root = Path(__file__).resolve().parents[1]
    command = [python, "-m", "benchmarks.scale", "--measure", implementation, model_name,
               str(frames), "--sweeps", str(num_sweeps)]
    if chunk_frames is not None:
        command += ["--chunk-frames", str(chunk_frames)]
    try:
        done = subprocess.run(command, cwd=root, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONPATH": str(root)})
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        return {"error": f"exit {done.returncode}: {lines[-1][:200]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_slope(results: list[dict]) -> float:
    """Least-squares slope of peak memory (device memory where measured, else RSS) against
    frames, in GB per million frames."""
    frames = np.array([r["frames"] for r in results], float)
    peak = np.array([r["device_mb"] if r.get("device_mb") is not None else r["rss_mb"]
                     for r in results], float)
    return float(np.polyfit(frames / 1e6, peak / 1024, 1)[0])


def run(report, argv: list[str] | tuple = (), jax_moseq_python: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scale")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES),
                        help="frames (rounded up to recordings of 5,000)")
    parser.add_argument("--sweeps", type=int, default=3, help="timed sweeps after the first")
    parser.add_argument("--jax-moseq-sizes", nargs="*", type=int, default=None,
                        help="sizes to run jax-moseq at (default: the smallest)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per measurement")
    parser.add_argument("--chunk-frames", type=int, default=None,
                        help="moseq's chunk_frames (default: sized from the device's memory)")
    args = parser.parse_args(list(argv))
    sizes = sorted(args.sizes)
    theirs_at = sizes[:1] if args.jax_moseq_sizes is None else sorted(args.jax_moseq_sizes)

    def line(result):
        if "error" in result:
            return {"error": result["error"]}
        fields = {"s/sweep": f"{result['seconds']:.3f}", "first_s": f"{result['first_s']:.1f}",
                  "init_s": f"{result['init_s']:.1f}", "rss_mb": f"{result['rss_mb']:.0f}",
                  "data_mb": f"{result['data_mb']:.0f}", "cpu_s": f"{result['cpu_s']:.0f}"}
        if result.get("device_mb") is not None:
            fields["device_mb"] = f"{result['device_mb']:.0f}"
        if "estimate_mb" in result:
            fields["estimate_mb"] = f"{result['estimate_mb']:.0f}"
        if "sweep_s" in result:
            fields["sweep_s"] = f"{result['sweep_s']:.3f}"
            fields["run_overhead"] = f"{result['seconds'] / result['sweep_s'] - 1:+.0%}"
        return fields

    for model_name in args.models:
        ours = []
        for frames in sizes:
            result = measure_in_subprocess("moseq", model_name, frames, args.sweeps,
                                           timeout=args.timeout, chunk_frames=args.chunk_frames)
            report(f"scale {model_name}: moseq, {frames} frames", result.get("seconds"),
                   **line(result))
            if "error" not in result:
                ours.append(result)
            if frames not in theirs_at:
                continue
            theirs = measure_in_subprocess("jax-moseq", model_name, frames, args.sweeps,
                                           python=jax_moseq_python or sys.executable,
                                           timeout=args.timeout)
            if not theirs:
                report(f"scale {model_name}: jax-moseq not importable, no comparison", None)
            elif "error" in theirs or "error" in result:
                report(f"scale {model_name}: jax-moseq, {frames} frames", None, **line(theirs))
            else:
                report(f"scale {model_name}: jax-moseq, {frames} frames", theirs["seconds"],
                       **line(theirs), speedup=theirs["seconds"] / result["seconds"],
                       first_ratio=f"{result['first_s'] / theirs['first_s']:.2f}")
        if len(ours) >= 2:
            kind = "device" if ours[0].get("device_mb") is not None else "RSS"
            report(f"scale {model_name}: peak {kind} memory slope, GB per million frames", None,
                   slope=f"{memory_slope(ours):.3f}",
                   between=f"{ours[0]['frames']}-{ours[-1]['frames']}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        parser = argparse.ArgumentParser()
        parser.add_argument("--measure", nargs=3, metavar=("IMPLEMENTATION", "MODEL", "FRAMES"))
        parser.add_argument("--sweeps", type=int, default=3)
        parser.add_argument("--chunk-frames", type=int, default=None)
        args = parser.parse_args()
        implementation, model_name, frames = args.measure
        print(json.dumps(measure(implementation, model_name, int(frames), args.sweeps,
                                 args.chunk_frames)))
    else:
        from benchmarks.__main__ import main

        sys.argv[1:1] = ["scale"]
        main()
