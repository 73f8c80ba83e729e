"""moseq.testing.strategies: every strategy draws valid values, and they make short property
tests of moseq's own kernels and blocks."""

from __future__ import annotations

import importlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moseq.blocks import ARDynamics, HDPTransitions, StickyDirTransitions
from moseq.ops.batching import batch, unbatch
from moseq.ops.linalg import cholesky
from moseq.ops.transitions import count_transitions
from moseq.testing import strategies as mst

FEW = settings(max_examples=10, deadline=None)


@given(mst.positive_floats(0.1, 10.0))
def test_positive_floats_stay_in_range(value):
    assert 0.1 <= value <= 10.0


@given(mst.simplex_vectors(size=(1, 6), min_value=0.05))
def test_simplex_vectors(p):
    assert np.all(p >= 0.05 - 1e-12)
    np.testing.assert_allclose(p.sum(), 1.0)


@given(mst.transition_matrices(num_states=(1, 6), min_probability=0.01,
                               stickiness=st.floats(0.0, 50.0)))
def test_transition_matrices_have_rows_on_the_simplex(pi):
    assert pi.shape[0] == pi.shape[1]
    assert np.all(pi >= 0.01 - 1e-12)
    np.testing.assert_allclose(pi.sum(1), 1.0)


@given(mst.spd_matrices(dim=(1, 5), min_eigenvalue=1e-2, max_condition=1e3))
def test_spd_matrices_factorise(matrix):
    np.testing.assert_array_equal(matrix, matrix.T)
    eigenvalues = np.linalg.eigvalsh(matrix)
    assert np.all(eigenvalues > 1e-2 * (1 - 1e-6)) and np.all(eigenvalues < 10 * (1 + 1e-6))
    chol = np.asarray(cholesky(matrix))
    np.testing.assert_allclose(chol @ chol.T, matrix, atol=1e-10)


@given(mst.masks(num_recordings=(1, 4), num_frames=(2, 30), min_frames=3))
def test_masks_are_ragged_with_one_full_recording(mask):
    assert set(np.unique(mask)) <= {0.0, 1.0}
    lengths = mask.sum(1)
    assert lengths.max() == mask.shape[1] and lengths.min() >= 3
    # real frames first, padding after
    np.testing.assert_array_equal(mask, np.sort(mask, axis=1)[:, ::-1])


@given(mst.state_sequences(num_states=4, holes=True))
def test_transition_counts_count_every_unmasked_destination(seqs):
    """A property of moseq.ops.transitions, written with the strategies in three lines."""
    counts = np.asarray(count_transitions(4, seqs["z"], seqs["mask"]))
    assert counts.sum() == seqs["mask"][:, 1:].sum()
    assert seqs["z"].min() >= 0 and seqs["z"].max() < 4


@given(mst.ragged_recordings(dim=(1, 3), num_recordings=(1, 4), max_frames=25))
def test_batch_then_unbatch_returns_the_recordings(recordings):
    data, mask, (keys, bounds) = batch(recordings, seg_length=10, seg_overlap=3)
    assert mask.shape == data.shape[:2]
    restored = unbatch(data, keys, bounds)
    for name, array in recordings.items():
        np.testing.assert_array_equal(restored[name], array)


@given(mst.batched_recordings(dim=2, num_recordings=(1, 3)))
def test_batched_recordings_pad_with_the_last_frame(batched):
    x, mask = batched["x"], batched["mask"]
    assert x.shape[:2] == mask.shape and x.shape[2] == 2
    for recording, frames in zip(x, mask, strict=True):
        length = int(frames.sum())
        np.testing.assert_array_equal(recording[length:], np.repeat(recording[length - 1:length],
                                                                    x.shape[1] - length, 0))


@FEW
@given(mst.hdp_hyperparameters(num_states=(2, 4)), st.integers(0, 2**31 - 1))
def test_hdp_prior_draws_are_transition_matrices(hyperparameters, seed):
    block = HDPTransitions(**hyperparameters)
    draw = block.sample_prior(jax.random.key(seed), {})
    np.testing.assert_allclose(np.asarray(draw["pi"]).sum(1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(draw["betas"]).sum(), 1.0, rtol=1e-10)


@FEW
@given(mst.sticky_dir_hyperparameters(num_states=(2, 4)))
def test_sticky_dir_hyperparameters_build_blocks(hyperparameters):
    block = StickyDirTransitions(**hyperparameters)
    assert block.num_states == hyperparameters["num_states"]


@FEW
@given(mst.ar_hyperparameters(num_states=2, latent_dim=(1, 2), nlags=1))
def test_ar_prior_noise_covariances_are_positive_definite(hyperparameters):
    dynamics = ARDynamics.create(**hyperparameters)
    draw = dynamics.sample_prior(jax.random.key(0), {})
    assert np.all(np.linalg.eigvalsh(np.asarray(draw["Q"])) > 0)


def test_strategies_need_hypothesis_with_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.delitem(sys.modules, "moseq.testing.strategies")
    with pytest.raises(ImportError, match="pip install hypothesis"):
        importlib.import_module("moseq.testing.strategies")


def test_moseq_testing_imports_without_hypothesis():
    code = ("import sys; sys.modules['hypothesis'] = None; import moseq.testing; "
            "assert 'moseq.testing.strategies' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
