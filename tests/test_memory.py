"""Memory-bounded sweeps: blocks on chunks of recordings give the draws they give on all
recordings at once (on one device and on a mesh of 8), the chunk is sized to the device or
set by hand, and a fit that would not fit is refused before anything compiles."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.core import gibbs, memory
from moseq.core.reduce import map_over_recordings, recording_chunks, sum_over_recordings
from moseq.models import arhmm, keypoint_slds
from moseq.testing.joint import COMPILER_OPTIONS

NUM_FRAMES = 40


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(11, NUM_FRAMES, 2)), axis=1) * 0.1
    mask = np.ones((11, NUM_FRAMES))
    mask[3, -5:] = 0
    return {"x": jnp.asarray(x), "mask": jnp.asarray(mask)}


def _model(chunk_recordings=None, mesh=None):
    chunk_frames = None if chunk_recordings is None else chunk_recordings * NUM_FRAMES
    return arhmm(2, num_states=5, nlags=2, kappa=10.0, mesh=mesh, chunk_frames=chunk_frames)


@pytest.mark.parametrize("size", [1, 3, 4, 11, 20])
def test_sums_and_maps_in_chunks_equal_them_at_once(size):
    values = jnp.arange(11 * 3, dtype=float).reshape(11, 3) ** 1.5

    def draw(recordings, shared):
        return {"y": recordings["v"] * shared["scale"] + jnp.cumsum(recordings["v"], -1)}

    whole = map_over_recordings(draw, {"v": values}, {"scale": 2.0})
    with recording_chunks(size):
        total = sum_over_recordings(lambda v: (jnp.sum(v, 0), jnp.sum(v > 10)), values)
        chunked = map_over_recordings(draw, {"v": values}, {"scale": 2.0})
    np.testing.assert_allclose(total[0], jnp.sum(values, 0), rtol=1e-12)
    assert int(total[1]) == int(jnp.sum(values > 10))
    np.testing.assert_array_equal(chunked["y"], whole["y"])


def test_recording_chunks_refuses_a_bad_size():
    with pytest.raises(ValueError, match="recordings per chunk"), recording_chunks(0):
        pass


@pytest.mark.parametrize("mesh_devices", [None, 8])
def test_chunked_chain_is_the_chain_within_rounding(data, mesh_devices):
    mesh = None if mesh_devices is None else jax.make_mesh((mesh_devices,), ("batch",))
    whole, chunked = _model(), _model(chunk_recordings=1 if mesh else 3, mesh=mesh)
    assert chunked.recording_chunks(NUM_FRAMES).size == (1 if mesh else 3)
    state = whole.init(0, data)
    # The HMM draws each recording alone: chunks give exactly the same z.
    np.testing.assert_array_equal(chunked.init(0, data)["z"], state["z"])
    only_states = ("HDPTransitions", "ARDynamics")
    np.testing.assert_array_equal(chunked.sweep(1, data, state, frozen=only_states)["z"],
                                  whole.sweep(1, data, state, frozen=only_states)["z"])
    # Sums over recordings (AR statistics, log joint) change their order of additions only.
    ran_whole, trace_whole = whole.run(2, data, state, 2, progress=False)
    ran_chunked, trace_chunked = chunked.run(2, data, state, 2, progress=False)
    np.testing.assert_array_equal(ran_chunked["z"], ran_whole["z"])
    for name in ("betas", "pi", "Ab", "Q"):
        np.testing.assert_allclose(ran_chunked[name], ran_whole[name], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(trace_chunked["log_joint"], trace_whole["log_joint"], rtol=1e-10)


def test_chunk_size_is_automatic_or_given(monkeypatch):
    assert memory.MIN_CHUNK_FRAMES <= memory.automatic_chunk_frames() <= memory.MAX_CHUNK_FRAMES
    monkeypatch.setattr(memory, "device_memory_bytes", lambda device=None: 64 * 4096 * 100_000)
    assert memory.automatic_chunk_frames() == 100_000
    assert _model().recording_chunks(1000).size == 100
    assert _model(chunk_recordings=2).recording_chunks(NUM_FRAMES).size == 2
    assert _model(chunk_recordings=2).recording_chunks(10 * NUM_FRAMES).size == 1
    for wrong in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="`chunk_frames` must be a positive int"):
            arhmm(2, num_states=5, chunk_frames=wrong)


def test_estimate_grows_with_frames_and_names_its_parts(data):
    model = _model(chunk_recordings=2)
    small = memory.estimate_memory(model, data, available=2**40)
    doubled = {k: jnp.concatenate([v, v]) for k, v in data.items()}
    large = memory.estimate_memory(model, doubled, available=2**40)
    assert small.fits and small.overhead == large.overhead == memory.FIXED_OVERHEAD_BYTES
    # Data: x (float) and mask per frame; state: z (int32) per frame, three copies.
    frames = 11 * NUM_FRAMES
    itemsize = jnp.zeros(()).dtype.itemsize
    assert small.data == frames * 3 * itemsize + 11 * np.dtype(int).itemsize
    assert large.data == 2 * small.data
    assert large.state > small.state
    assert small.working == large.working == 2 * NUM_FRAMES * memory.WORKING_BYTES_PER_FRAME
    refused = memory.estimate_memory(model, data, available=2**20)
    assert not refused.fits and "of 0.00 GB" in refused.describe()


def test_fit_that_does_not_fit_is_refused_before_compiling(tmp_path, monkeypatch):
    from moseq import pipeline
    from moseq.core import scheduler
    from tests.test_pipeline import _project

    project = _project(tmp_path / "p", fitting={"chunk_frames": 4096})
    assert pipeline.Config.load(project).fitting.chunk_frames == 4096

    def compiled(*args, **kwargs):
        raise AssertionError("a block was compiled before the memory check")

    monkeypatch.setattr(scheduler, "_compiled_init_block", compiled)
    monkeypatch.setattr(memory, "device_memory_bytes", lambda device=None: 2**28)
    with pytest.raises(MemoryError) as refusal:
        pipeline.fit(project, progress=False, report=False)
    message = str(refusal.value)
    for remedy in ("fitting.chunk_frames", "data.seg_length", "model.num_states", "devices"):
        assert remedy in message
    assert "of 0.25 GB" in message


def test_working_memory_per_frame_bounds_every_compiled_block():
    """`WORKING_BYTES_PER_FRAME` against XLA's memory analysis of each block of the largest
    shipped model at the benchmark's sizes (keypoint-SLDS, K = 100, D = 10, L = 3, 10
    keypoints in 2-D, float32 data), compiled on chunks of one and of two 2,000-frame
    recordings: the growth of each block's temporary buffers per frame of chunk stays under
    the constant, the largest takes more than a quarter of it (a constant far above the blocks
    would make the chunks needlessly small), and what does not grow with the chunk (per-state
    buffers) is a small part of `FIXED_OVERHEAD_BYTES`."""
    num_frames, num_keypoints = 2_000, 10
    rng = np.random.default_rng(0)
    body = np.stack([np.linspace(3.0, -3.0, num_keypoints), np.zeros(num_keypoints)], -1)
    Y = body + 0.3 * rng.normal(size=(4, num_frames, num_keypoints, 2))
    data = {"Y": Y.astype(np.float32), "conf": np.ones((4, num_frames, num_keypoints), np.float32),
            "mask": np.ones((4, num_frames), np.float32)}
    key = jax.random.key(0)
    temporary = {}
    for recordings in (1, 2):
        model = keypoint_slds((0,), (num_keypoints - 1,), latent_dim=10, num_states=100,
                              nlags=3, chunk_frames=recordings * num_frames)
        estimate = memory.estimate_memory(model, data, available=2**40)
        assert estimate.working == recordings * num_frames * memory.WORKING_BYTES_PER_FRAME
        padded = model.prepare(data).arrays
        state = jax.eval_shape(functools.partial(gibbs.init_state, model.bound_blocks, key),
                               padded)
        chunks = model.recording_chunks(num_frames)
        assert chunks.size == recordings
        for block in model.bound_blocks:
            step = jax.jit(functools.partial(gibbs.resample_block, block, chunks=chunks))
            # XLA's buffers are assigned before LLVM optimises the code: the test options
            # give the same analysis in half the compile time.
            analysis = step.lower(key, padded, state).compile(
                compiler_options=COMPILER_OPTIONS).memory_analysis()
            temporary.setdefault(block.name, []).append(analysis.temp_size_in_bytes)
    per_frame = {name: (two - one) / num_frames for name, (one, two) in temporary.items()}
    fixed = {name: one - per_frame[name] * num_frames for name, (one, _) in temporary.items()}
    largest = max(per_frame, key=per_frame.get)
    assert memory.WORKING_BYTES_PER_FRAME / 4 < per_frame[largest], per_frame
    assert per_frame[largest] <= memory.WORKING_BYTES_PER_FRAME, per_frame
    assert max(fixed.values()) < memory.FIXED_OVERHEAD_BYTES / 16, fixed
