"""`make demo` / `python -m moseq.demo`: keypoint-SLDS fits on built-in data.

1. Synthetic keypoints simulated from a keypoint-SLDS with 5 well-separated syllables: the
   fit (AR-only stage, then the full model) should find them again (frame accuracy after
   matching fitted to true syllables).
2. A real clip shipped with moseq (JABS, one mouse, 1800 frames at 30 fps, 12 keypoints):
   the same two-stage fit (kappa 1e6 for the AR-only stage, 1e4 for the full model, as
   keypoint-MoSeq users do), reporting how many syllables it uses and how long they last,
   and writing per-frame results (h5, csv) and a report with figures to `moseq_demo/`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

import moseq.io
from moseq.data import JABS_CLIP
from moseq.export import results_per_recording, save_results_csv, save_results_h5
from moseq.models import fit_staged, keypoint_slds, syllable_marginals, with_kappa
from moseq.ops.sequences import get_durations, get_frequencies
from moseq.viz import write_report

OUTPUT = Path("moseq_demo")


def two_stage_fit(model, data, ar_sweeps: int, full_sweeps: int, seed: int = 0, **kappas):
    """`fit_staged` (AR-only stage, then the full model), printing the log joint."""
    state, trace = fit_staged(model, seed, data, ar_sweeps=ar_sweeps, full_sweeps=full_sweeps,
                              chunk_size=10, progress=False, **kappas)
    print(f"  log joint: {trace['log_joint'][0]:.4g} (first AR sweep) -> "
          f"{trace['log_joint'][-1]:.4g} (last full sweep)")
    return state, trace


def synthetic_demo() -> None:
    num_true, dim, num_keypoints = 5, 2, 6
    rng = np.random.default_rng(0)
    Ab = np.zeros((num_true, dim, dim + 1))
    for k in range(num_true):
        angle = 2 * np.pi * k / num_true
        Ab[k, :, :dim] = 0.5 * np.array([[np.cos(angle), -np.sin(angle)],
                                         [np.sin(angle), np.cos(angle)]])
        Ab[k, :, -1] = 2.0 * np.array([np.cos(angle), np.sin(angle)])
    pi = np.full((num_true, num_true), 0.05 / (num_true - 1))
    np.fill_diagonal(pi, 0.95)
    truth_params = {"Ab": Ab, "Q": np.tile(0.05 * np.eye(dim), (num_true, 1, 1)), "pi": pi,
                    "betas": np.full(num_true, 1 / num_true),
                    "Cd": rng.normal(0, 3, ((num_keypoints - 1) * 2, dim + 1)),
                    "sigmasq": np.full(num_keypoints, 0.05)}
    simulator = keypoint_slds((0,), (3,), latent_dim=dim, num_keypoints=num_keypoints,
                              num_states=num_true, nlags=1)
    data, truth = simulator.simulate(0, 4, 600, given=truth_params)
    print(f"synthetic: 4 recordings x 600 frames, {num_keypoints} keypoints, "
          f"{num_true} true syllables; fitting with 8")
    model = keypoint_slds((0,), (3,), latent_dim=dim, num_states=8, nlags=1, kappa=100.0)
    state, _ = two_stage_fit(model, data, ar_sweeps=50, full_sweeps=50, seed=1)
    confusion = np.zeros((num_true, 8))
    np.add.at(confusion, (np.ravel(truth["z"]), np.ravel(state["z"])), 1)
    rows, cols = linear_sum_assignment(-confusion)
    print(f"  frame accuracy of the matched syllables: "
          f"{confusion[rows, cols].sum() / confusion.sum():.3f}")


def real_clip_demo() -> None:
    recordings = moseq.io.load_keypoints(JABS_CLIP)
    batch = moseq.io.to_batch(recordings, anterior=["NOSE"], posterior=["BASE_TAIL"])
    num_frames, num_keypoints = batch.data["Y"].shape[1:3]
    print(f"real clip ({JABS_CLIP.name}): {num_frames} frames, {num_keypoints} keypoints")
    num_states = 30
    model = keypoint_slds(batch.anterior_idxs, batch.posterior_idxs, latent_dim=6,
                          num_states=num_states)
    state, trace = two_stage_fit(model, batch.data, ar_sweeps=50, full_sweeps=50,
                                 ar_kappa=1e6, full_kappa=1e4)
    nlags = model.block("ARDynamics").nlags
    z, mask = np.asarray(state["z"]), np.asarray(batch.data["mask"])[:, nlags:]
    frequencies = get_frequencies(z, mask, num_states=num_states)
    durations = get_durations(z, mask)
    used = int(np.sum(frequencies > 0.01))
    print(f"  {used} syllables above 1% usage; median duration {np.median(durations):.0f} "
          f"frames ({np.median(durations) / 30 * 1000:.0f} ms at 30 fps)")
    marginals, _ = syllable_marginals(with_kappa(model, 1e4), batch.data, state)
    results = results_per_recording(state, batch.data, nlags, marginals=marginals, batch=batch)
    save_results_h5(OUTPUT / "results.h5", results, {"fps": 30.0, "source": JABS_CLIP.name})
    save_results_csv(OUTPUT / "csv", results)
    report = write_report(OUTPUT / "report", results, num_states, nlags, trace=trace, fps=30.0,
                          keypoints=moseq.io.unbatch(batch.data["Y"], batch))
    print(f"  results: {OUTPUT / 'results.h5'}, {OUTPUT / 'csv'}/; report: {report}")


def main() -> None:
    start = time.perf_counter()
    synthetic_demo()
    real_clip_demo()
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
