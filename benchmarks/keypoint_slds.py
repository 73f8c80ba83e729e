"""One full keypoint-SLDS sweep (transitions, AR parameters, z, Kalman latents x, heading,
centroid, noise scales).

Workload: N=4 recordings x T=5,000 frames, 10 keypoints in 2-D, K=100 states, D=10, L=3,
float32, keypoint-MoSeq's defaults (jitter 1e-3, sequential Kalman sampler). The keypoints
are simulated from the model itself with stable AR dynamics, a smooth heading and tracking
confidences in (0, 1]; both implementations initialise themselves from the same keypoints.
Each implementation runs in its own subprocess, jax-moseq's `keypoint_slds.resample_model`
only where it is importable (`pip install jax-moseq` in the environment running this).

Figures (all from the same run, each implementation in a fresh subprocess):
- time: median wall time of one sweep over 5 calls, after a warm-up call (compilation);
  `best_ms` is the fastest of the 5 (steadier on a shared machine).
  For moseq also the per-sweep time inside `run()` (10 sweeps in one compiled scan, with the
  log-joint trace).
- `xla_mb`: the temporary memory XLA allocates for one sweep, from the compiled executables'
  memory analysis: the largest of the compiled steps (moseq compiles each block separately;
  jax-moseq's sweep is a chain of separately compiled programs plus eager ops). The working
  set that bounds the data size.
- `max_mb`: the process's peak resident set size (getrusage ru_maxrss) after the timed
  sweeps: imports, data, initialisation, compilation and the sweeps, the "peak memory" a
  user sees. `base_mb` is the resident size after imports and loading the data, and
  `above_base_mb` = max_mb - base_mb. Both are dominated by XLA compilation (the compiler's
  own peak and the heap it leaves behind), not by the sweep's working set. For moseq, the
  `run()` line's `max_mb` is the peak after also compiling and running `run()` (log-joint
  trace programs included).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

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

NUM_RECORDINGS, NUM_FRAMES, NUM_KEYPOINTS, KEYPOINT_DIM = 4, 5_000, 10, 2
NUM_STATES, LATENT_DIM, NLAGS = 100, 10, 3
ANTERIOR, POSTERIOR = (0,), (NUM_KEYPOINTS - 1,)
JITTER = 1e-3


def workload(seed: int = 0) -> dict:
    """{"Y": (N, T, k, 2), "conf": (N, T, k), "mask": (N, T)} float32, from the model with
    stable AR parameters, sticky transitions and a smooth heading."""
    from moseq.models import keypoint_slds
    from moseq.ops.keypoints import noise_prior_scale

    rng = np.random.default_rng(seed)
    K, D, L, k = NUM_STATES, LATENT_DIM, NLAGS, NUM_KEYPOINTS
    Ab = np.zeros((K, D, D * L + 1))
    Ab[:, :, D * (L - 1):D * L] = 0.95 * np.eye(D) + 0.01 * rng.normal(size=(K, D, D))
    Ab[:, :, -1] = 0.01 * rng.normal(size=(K, D))
    pi = np.full((K, K), 0.03 / (K - 1))
    np.fill_diagonal(pi, 0.97)
    shape = (NUM_RECORDINGS, NUM_FRAMES)
    heading = np.cumsum(0.05 * rng.normal(size=shape), axis=1)
    conf = np.clip(rng.beta(5.0, 1.0, size=(*shape, k)), 0.01, 1.0)
    # Noise scales from their prior given the confidences (the error model's s0).
    s = noise_prior_scale(conf, -0.5, 0.25) * 5.0 / rng.chisquare(5.0, size=conf.shape)
    given = {
        "Ab": Ab, "Q": np.tile(0.01 * np.eye(D), (K, 1, 1)), "pi": pi,
        "betas": np.ones(K) / K,
        "Cd": 10.0 * rng.normal(size=((k - 1) * KEYPOINT_DIM, D + 1)),
        "sigmasq": np.full(k, 0.1), "h": heading, "s": s,
    }
    model = keypoint_slds(ANTERIOR, POSTERIOR, latent_dim=D, num_states=K, nlags=L,
                          num_keypoints=k, keypoint_dim=KEYPOINT_DIM)
    given = {name: jnp.asarray(value, jnp.float32) for name, value in given.items()}
    data, _ = model.simulate(jax.random.key(seed), NUM_RECORDINGS, NUM_FRAMES, given=given)
    return {"Y": np.asarray(data["Y"], np.float32), "conf": conf.astype(np.float32),
            "mask": np.ones(shape, np.float32)}


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def load(path: str) -> dict:
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}


def measure_moseq(path: str) -> dict:
    from moseq.models import keypoint_slds

    data = load(path)
    base = _status_mb("VmRSS")
    model = keypoint_slds(ANTERIOR, POSTERIOR, latent_dim=LATENT_DIM, num_states=NUM_STATES,
                          nlags=NLAGS, jitter=JITTER)
    state = jax.block_until_ready(model.init(0, data))
    sweep, xla_mb = moseq_sweep(model, data, state, jax.random.key(1))
    result = {**sweep_timing(sweep), "base_mb": base}
    result["run_seconds"] = moseq_run_seconds(model, data, state)
    result["run_max_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**result, "xla_mb": xla_mb()}


def init_jax_moseq(kpslds, data: dict) -> dict:
    """jax-moseq's keypoint-SLDS (`kpslds`, its `jax_moseq.models.keypoint_slds` module)
    initialised on `data` with the hyperparameters of moseq's defaults on this workload."""
    return kpslds.init_model(
        data,
        seed=jax.random.PRNGKey(0),
        anterior_idxs=jnp.array(ANTERIOR), posterior_idxs=jnp.array(POSTERIOR),
        error_estimator={"slope": -0.5, "intercept": 0.25},
        trans_hypparams={"num_states": NUM_STATES, "alpha": 5.7, "kappa": 1e6, "gamma": 1e3},
        ar_hypparams={"latent_dim": LATENT_DIM, "nlags": NLAGS, "S_0_scale": 0.01,
                      "K_0_scale": 10.0},
        obs_hypparams={"nu_sigma": 1e5, "sigmasq_0": 0.1, "nu_s": 5, "sigmasq_C": 0.1},
        cen_hypparams={"sigmasq_loc": 0.5},
    )


def measure_jax_moseq(path: str) -> dict:
    kpslds = optional_module("jax_moseq.models.keypoint_slds")
    if kpslds is None:
        return {}
    arhmm_gibbs = optional_module("jax_moseq.models.arhmm.gibbs")
    slds_gibbs = optional_module("jax_moseq.models.slds.gibbs")
    kalman = optional_module("jax_moseq.utils.kalman")
    data = {name: jnp.asarray(value) for name, value in load(path).items()}
    base = _status_mb("VmRSS")
    model = jax.block_until_ready(init_jax_moseq(kpslds, data))

    def sweep():
        return kpslds.resample_model(data, **model, jitter=JITTER,
                                     parallel_message_passing=False)["states"]

    result = {**sweep_timing(sweep), "base_mb": base}

    # Its sweep is several compiled programs and eager ops: the largest working set of the
    # compiled steps (the Kalman sampler dominates) is its peak.
    states, params, hyper = model["states"], model["params"], model["hypparams"]
    seed = model["seed"]
    resample_ar = getattr(arhmm_gibbs.resample_ar_params, "__wrapped__",
                          arhmm_gibbs.resample_ar_params)
    candidates = [
        xla_working_mb(arhmm_gibbs.resample_discrete_stateseqs, seed, states["x"],
                       data["mask"], params["Ab"], params["Q"], params["pi"]),
        xla_working_mb(resample_ar, seed, z=states["z"], x=states["x"], mask=data["mask"],
                       **hyper["ar_hypparams"]),
        xla_working_mb(kpslds.resample_heading, seed, data["Y"], states["x"], states["v"],
                       states["s"], params["Cd"], params["sigmasq"]),
        xla_working_mb(kpslds.resample_location, seed, data["Y"], data["mask"], states["x"],
                       states["h"], states["s"], params["Cd"], params["sigmasq"],
                       hyper["cen_hypparams"]["sigmasq_loc"]),
        xla_working_mb(kpslds.resample_scales, seed, data["Y"], states["x"], states["v"],
                       states["h"], params["Cd"], params["sigmasq"],
                       hyper["obs_hypparams"]["nu_s"], model["noise_prior"]),
    ]
    # The Kalman sampler with the arguments `slds.resample_continuous_stateseqs` gives it.
    Y, s, Cd, sigmasq = kpslds.to_vanilla_slds(data["Y"], states["v"], states["h"],
                                               states["s"], params["Cd"], params["sigmasq"])
    ar_dim = LATENT_DIM * NLAGS
    m0, S0 = jnp.zeros(ar_dim), 10 * jnp.eye(ar_dim)
    C_, d_, R_, y_, _, _ = jax.vmap(
        kalman.ar_to_lds_emissions, in_axes=(None, 0, 0, None, None, None))(
        Cd, sigmasq * s, Y, m0, S0, NLAGS)
    A_, b_, Q_ = kalman.ar_to_lds_dynamics(params["Ab"], params["Q"])
    masked = {"weights": jnp.zeros((ar_dim, ar_dim)).at[-LATENT_DIM:, -LATENT_DIM:].set(
        jnp.eye(LATENT_DIM)), "bias": jnp.zeros(ar_dim), "cov": 10 * jnp.eye(ar_dim)}
    candidates.append(xla_working_mb(
        slds_gibbs.batched_kalman_sample, jax.random.split(seed, NUM_RECORDINGS), y_,
        data["mask"][:, NLAGS - 1:], states["z"], m0, S0, A_, b_, Q_, C_, d_, R_, masked,
        10 * jnp.ones(Y.shape[-1]), JITTER, parallel=False))
    result["xla_mb"] = max(candidates)
    return result


def run(report) -> None:
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        # The keypoints are simulated once, here, so neither measured process holds the
        # simulation's programs.
        path = str(Path(folder) / "keypoints.npz")
        np.savez(path, **workload())
        for implementation in ("moseq", "jax-moseq"):
            output = subprocess.run(
                [sys.executable, "-m", "benchmarks.keypoint_slds", "--implementation",
                 implementation, "--data", path],
                check=True, capture_output=True, text=True,
            ).stdout
            results[implementation] = json.loads(output.strip().splitlines()[-1])

    def memory(result):
        return {"best_ms": f"{result['best_seconds'] * 1e3:.0f}",
                "xla_mb": f"{result['xla_mb']:.0f}", "max_mb": f"{result['max_mb']:.0f}",
                "base_mb": f"{result['base_mb']:.0f}",
                "above_base_mb": f"{result['max_mb'] - result['base_mb']:.0f}"}

    ours = results["moseq"]
    report("keypoint_slds: one sweep (4 x 5000, k=10, K=100, D=10, L=3)", ours["seconds"],
           **memory(ours))
    report("keypoint_slds: per sweep inside run() (with log-joint trace)", ours["run_seconds"],
           max_mb=f"{ours['run_max_mb']:.0f}")
    theirs = results["jax-moseq"]
    if not theirs:
        report("keypoint_slds: jax-moseq not importable, no comparison", None)
        return
    report("keypoint_slds: jax-moseq resample_model (same data)", theirs["seconds"],
           **memory(theirs), speedup=theirs["seconds"] / ours["seconds"],
           best_speedup=f"{theirs['best_seconds'] / ours['best_seconds']:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--implementation", choices=("moseq", "jax-moseq"), required=True)
    parser.add_argument("--data", required=True, help="an .npz written from workload()")
    args = parser.parse_args()
    measure = measure_moseq if args.implementation == "moseq" else measure_jax_moseq
    print(json.dumps(measure(args.data)))
