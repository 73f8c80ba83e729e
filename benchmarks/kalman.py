"""Kalman FFBS of the lifted AR latents: N=4 recordings x T=5,000 frames, D=10, L=3 (n=30),
20 observed coordinates (10 keypoints x 2), K=100 states, float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import median_seconds, optional_module
from moseq.ops.kalman import ar_to_lds_dynamics, ar_to_lds_emissions, kalman_sample

NUM_RECORDINGS, NUM_FRAMES, LATENT_DIM, NLAGS, OBS_DIM, NUM_STATES = 4, 5_000, 10, 3, 20, 100


def workload(seed: int = 0):
    """Keys, per-recording arguments (batched) and shared arguments of `kalman_sample`."""
    rng = np.random.default_rng(seed)
    D, L, n = LATENT_DIM, NLAGS, LATENT_DIM * NLAGS
    # Stable AR(3) dynamics close to a damped random walk, one per state.
    Ab = np.zeros((NUM_STATES, D, n + 1))
    Ab[:, :, 2 * D : 3 * D] = 0.85 * np.eye(D)
    Ab[:, :, :n] += 0.04 * rng.normal(size=(NUM_STATES, D, n))
    Ab[:, :, -1] = 0.1 * rng.normal(size=(NUM_STATES, D))
    G = rng.normal(size=(NUM_STATES, D, D))
    Q = 0.05 * (G @ np.swapaxes(G, 1, 2) / D + 0.2 * np.eye(D))
    Cd = rng.normal(size=(OBS_DIM, D + 1))
    num_raw = NUM_FRAMES + L - 1
    A, B, Q_lifted = ar_to_lds_dynamics(Ab.astype(np.float32), Q.astype(np.float32))
    per_recording = []
    for _ in range(NUM_RECORDINGS):
        z = rng.integers(0, NUM_STATES, size=num_raw)
        x = np.zeros((num_raw, D))
        for t in range(L, num_raw):
            x[t] = Ab[z[t], :, :-1] @ x[t - L : t].reshape(-1) + Ab[z[t], :, -1]
            x[t] += np.linalg.cholesky(Q[z[t]]) @ rng.normal(size=D)
        R = rng.uniform(0.2, 1.0, size=(num_raw, OBS_DIM))
        y = x @ Cd[:, :-1].T + Cd[:, -1] + np.sqrt(R) * rng.normal(size=(num_raw, OBS_DIM))
        f32 = lambda a: np.asarray(a, np.float32)
        C, d, R_, y_, m0, S0 = ar_to_lds_emissions(
            f32(Cd), f32(R), f32(y), np.zeros(n, np.float32), 10 * np.eye(n, dtype=np.float32), L
        )
        mask = np.ones(NUM_FRAMES, np.float32)
        mask[-30:] = 0.0  # padding at the end of the segment, as after batching
        per_recording.append(dict(ys=y_, mask=mask, zs=z[L:].astype(np.int32), m0=m0, S0=S0, Rs=R_))
    batched = {k: jnp.stack([r[k] for r in per_recording]) for k in per_recording[0]}
    hold_newest = np.zeros((n, n), np.float32)
    hold_newest[-D:, -D:] = np.eye(D)
    shared = dict(
        A=A,
        B=B,
        Q=Q_lifted,
        C=C,
        D=d,
        masked_dynamics_params=dict(
            weights=jnp.asarray(hold_newest),
            bias=jnp.zeros(n, jnp.float32),
            cov=10 * jnp.eye(n, dtype=jnp.float32),
        ),
        masked_obs_noise=jnp.full(OBS_DIM, 10.0, jnp.float32),
    )
    keys = jax.random.split(jax.random.key(seed), NUM_RECORDINGS)
    return keys, batched, shared


def _batched_sampler(sample, parallel):
    def one(key, ys, mask, zs, m0, S0, Rs, shared):
        return sample(
            key,
            ys,
            mask,
            zs,
            m0,
            S0,
            shared["A"],
            shared["B"],
            shared["Q"],
            shared["C"],
            shared["D"],
            Rs,
            shared["masked_dynamics_params"],
            shared["masked_obs_noise"],
            jitter=1e-3,
            parallel=parallel,
        )

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 0, 0, None)))


def run(report) -> None:
    keys, batched, shared = workload()
    args = (
        batched["ys"],
        batched["mask"],
        batched["zs"],
        batched["m0"],
        batched["S0"],
        batched["Rs"],
        shared,
    )
    label = f"{NUM_RECORDINGS} x {NUM_FRAMES}, n={LATENT_DIM * NLAGS}, K={NUM_STATES}"
    frames = NUM_RECORDINGS * NUM_FRAMES
    ours = {}
    for parallel in (False, True):
        name = "parallel" if parallel else "sequential"
        seconds = median_seconds(_batched_sampler(kalman_sample, parallel), keys, *args)
        ours[parallel] = seconds
        report(
            f"kalman: kalman_sample {name} (vmap over {label})",
            seconds,
            us_per_frame=round(1e6 * seconds / frames, 2),
        )

    reference = optional_module("jax_moseq.utils.kalman")
    if reference is None:
        report("kalman: jax-moseq not importable, no comparison", None)
        return
    legacy_keys = jax.vmap(jax.random.key_data)(keys)
    for parallel in (False, True):
        name = "parallel" if parallel else "sequential"
        if parallel and jax.default_backend() == "cpu":
            # Its associative-scan sampler issues concurrent batched LAPACK calls, which hang
            # on CPU with jaxlib 0.10.x (see moseq.ops.kalman); observed on a 2-core machine.
            report(f"kalman: jax-moseq kalman_sample {name}: skipped on CPU (hangs)", None)
            continue
        sampler = _batched_sampler(reference.kalman_sample, parallel)
        seconds = median_seconds(sampler, legacy_keys, *args)
        report(
            f"kalman: jax-moseq kalman_sample {name} (same inputs)",
            seconds,
            speedup=seconds / ours[parallel],
        )
