"""One full AR-HMM sweep (HDP transitions + AR parameters + state sequences).

Workload: N=8 recordings x T=5,000 frames, K=100 states, D=10, L=3, float32. Each
implementation runs in its own subprocess. `xla_mb` is the temporary memory XLA allocates
for one sweep (the largest of its compiled steps: moseq compiles each block separately),
the working set that bounds the data size on a GPU. (The process's resident set size proved
too noisy to compare: it is dominated by compilation and the allocator's caching.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import (
    moseq_run_seconds,
    moseq_sweep,
    optional_module,
    sweep_timing,
    xla_working_mb,
)

NUM_RECORDINGS, NUM_FRAMES, NUM_STATES, LATENT_DIM, NLAGS = 8, 5_000, 100, 10, 3


def workload(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(NUM_RECORDINGS, NUM_FRAMES, LATENT_DIM))
    x = np.cumsum(steps, axis=1)
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    mask = np.ones((NUM_RECORDINGS, NUM_FRAMES), np.float32)
    mask[:, -200:] = 0
    return {"x": jnp.asarray(x, jnp.float32), "mask": jnp.asarray(mask)}


def measure_moseq() -> dict:
    from moseq.models import arhmm

    data = workload()
    model = arhmm(LATENT_DIM, num_states=NUM_STATES, nlags=NLAGS)
    state = model.init(0, data)
    sweep, xla_mb = moseq_sweep(model, data, state, jax.random.key(1))
    result = {**sweep_timing(sweep), "run_seconds": moseq_run_seconds(model, data, state)}
    return {**result, "xla_mb": xla_mb()}


def measure_jax_moseq() -> dict:
    arhmm = optional_module("jax_moseq.models.arhmm")
    if arhmm is None:
        return {}
    gibbs = optional_module("jax_moseq.models.arhmm.gibbs")
    data = workload()
    model = arhmm.init_model(
        data,
        seed=jax.random.PRNGKey(0),
        trans_hypparams={"num_states": NUM_STATES, "alpha": 5.7, "kappa": 1e6, "gamma": 1e3},
        ar_hypparams={"latent_dim": LATENT_DIM, "nlags": NLAGS, "S_0_scale": 0.01,
                      "K_0_scale": 10.0},
    )

    result = sweep_timing(lambda: arhmm.resample_model(data, **model)["states"]["z"])
    # Its sweep is several programs (and a host step); their largest working set is its peak.
    states, params, hyper = model["states"], model["params"], model["hypparams"]
    resample_ar = getattr(gibbs.resample_ar_params, "__wrapped__", gibbs.resample_ar_params)
    result["xla_mb"] = max(
        xla_working_mb(gibbs.resample_discrete_stateseqs, model["seed"], data["x"],
                       data["mask"], params["Ab"], params["Q"], params["pi"]),
        xla_working_mb(resample_ar, model["seed"], z=states["z"], x=data["x"],
                       mask=data["mask"], **hyper["ar_hypparams"]),
    )
    return result


def run(report) -> None:
    results = {}
    for implementation in ("moseq", "jax-moseq"):
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.arhmm", "--implementation", implementation],
            check=True, capture_output=True, text=True,
        ).stdout
        results[implementation] = json.loads(output.strip().splitlines()[-1])
    ours = results["moseq"]
    report("arhmm: one sweep (8 x 5000, K=100, D=10, L=3)", ours["seconds"],
           xla_mb=f"{ours['xla_mb']:.0f}")
    report("arhmm: per sweep inside run() (with log-joint trace)", ours["run_seconds"])
    theirs = results["jax-moseq"]
    if not theirs:
        report("arhmm: jax-moseq not importable, no comparison", None)
        return
    report("arhmm: jax-moseq resample_model (same data)", theirs["seconds"],
           xla_mb=f"{theirs['xla_mb']:.0f}",
           speedup=theirs["seconds"] / ours["seconds"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--implementation", choices=("moseq", "jax-moseq"), required=True)
    args = parser.parse_args()
    measure = measure_moseq if args.implementation == "moseq" else measure_jax_moseq
    print(json.dumps(measure()))
