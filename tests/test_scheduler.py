"""The Gibbs framework: plan validation, purity, determinism, compile-once, keys, NaNs."""

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import moseq
from moseq.blocks import ARDynamics, HDPTransitions, HMMStates, StickyDirTransitions
from moseq.core import GibbsBlock, GibbsScheduler, NumericalFailure, PlanError
from moseq.models import arhmm


def small_arhmm_data(num_recordings=3, num_frames=60, latent_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=(num_recordings, num_frames, latent_dim)), axis=1) * 0.1
    mask = np.ones((num_recordings, num_frames))
    mask[0, -7:] = 0
    return {"x": jnp.asarray(x), "mask": jnp.asarray(mask)}


def small_model(**kwargs):
    return arhmm(2, num_states=4, nlags=2, kappa=10.0, **kwargs)


class Constant(GibbsBlock):
    """A block that writes one variable and reads another: for plan tests."""

    writes: ClassVar = ("a",)
    reads: ClassVar = ("b",)

    def resample(self, key, data, state):
        return {"a": state["b"]}

    def sample_prior(self, key, state):
        return {"a": jnp.zeros(())}

    def log_prob(self, data, state):
        return jnp.zeros(())


class WritesB(Constant):
    writes: ClassVar = ("b",)
    reads: ClassVar = ()

    def resample(self, key, data, state):
        return {"b": state["b"]}

    def sample_prior(self, key, state):
        return {"b": jnp.ones(())}


class WritesAToo(Constant):
    reads: ClassVar = ()


def test_plan_with_a_read_nobody_writes_is_refused():
    with pytest.raises(PlanError, match="reads 'b'.*no block writes it"):
        GibbsScheduler([Constant()])


def test_plan_with_two_writers_is_refused():
    with pytest.raises(PlanError, match="'a' is written by both Constant and WritesAToo"):
        GibbsScheduler([Constant(), WritesAToo(), WritesB()])


def test_plan_with_a_missing_likelihood_provider_is_refused():
    dynamics = ARDynamics.create(4, 2, 2)
    with pytest.raises(PlanError, match="HMMStates needs ARDynamics"):
        GibbsScheduler([HDPTransitions(4), HMMStates(dynamics)], data_keys=("x", "mask"))


def test_hmm_states_needs_a_likelihood_block():
    with pytest.raises(TypeError, match="StateLikelihoods"):
        HMMStates(HDPTransitions(4))


def test_plan_writing_data_is_refused():
    with pytest.raises(PlanError, match="writes 'a', which is data"):
        GibbsScheduler([WritesAToo()], data_keys=("a", "mask"))


def test_init_cycle_is_refused():
    class NeedsB(Constant):
        init_reads: ClassVar = ("b",)

    class NeedsA(WritesB):
        init_reads: ClassVar = ("a",)

    with pytest.raises(PlanError, match="cycle"):
        GibbsScheduler([NeedsB(), NeedsA()])


def test_valid_plan_runs_and_init_order_follows_reads():
    model = GibbsScheduler([Constant(), WritesB()], data_keys=("mask",))
    data = {"mask": jnp.ones((2, 3))}
    state = model.init(0, data)
    assert set(state) == {"a", "b"}
    assert float(model.sweep(1, data, state)["a"]) == 1.0


def test_block_returning_undeclared_variables_is_refused():
    class Sloppy(WritesB):
        def sample_prior(self, key, state):
            return {"b": jnp.ones(()), "c": jnp.ones(())}

    with pytest.raises(ValueError, match=r"Sloppy.init returned \['c'\]"):
        GibbsScheduler([Sloppy()]).init(0, {"mask": jnp.ones((1, 2))})


def test_bad_data_is_refused_before_compilation():
    model = small_model()
    data = small_arhmm_data()
    with pytest.raises(ValueError, match="lacks"):
        model.init(0, {"x": data["x"]})
    with pytest.raises(ValueError, match=r"data\['x'\]"):
        model.init(0, {"x": data["x"][..., :1], "mask": data["mask"]})
    bad = np.asarray(data["x"]).copy()
    bad[1, 5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values in unmasked frames"):
        model.init(0, {"x": bad, "mask": data["mask"]})
    masked = np.asarray(data["mask"]).copy()
    masked[1, 5] = 0
    model.init(0, {"x": bad, "mask": masked})  # masked NaN is fine


def test_sweep_is_pure_and_deterministic():
    model = small_model()
    data = small_arhmm_data()
    state = model.init(jax.random.key(0), data)
    copies = jax.tree.map(np.array, (data, state))
    first = model.sweep(jax.random.key(1), data, state)
    second = model.sweep(jax.random.key(1), data, state)
    jax.tree.map(np.testing.assert_array_equal, first, second)
    jax.tree.map(np.testing.assert_array_equal, (data, state), copies)
    other = model.sweep(jax.random.key(2), data, state)
    assert not np.array_equal(other["Ab"], first["Ab"])
    assert set(first) == {"betas", "pi", "Ab", "Q", "z"}
    assert first["z"].shape == (3, 58)


def test_run_compiles_its_chunk_once_and_resumes_bit_for_bit():
    model = small_model()
    data = small_arhmm_data()
    state = model.init(0, data)
    traces = []

    class Counting(HDPTransitions):
        def resample(self, key, data, state):
            traces.append(1)  # runs at trace time only
            return super().resample(key, data, state)

    counted = GibbsScheduler([Counting(4, kappa=10.0), *model.blocks[1:]], data_keys=("x", "mask"))
    full, trace = counted.run(3, data, state, num_sweeps=7, chunk_size=3, progress=False)
    assert len(traces) == 1, "every chunk of a run shares one compilation"
    assert trace["log_joint"].shape == (7,) and np.all(np.isfinite(trace["log_joint"]))
    part, _ = counted.run(3, data, state, num_sweeps=4, chunk_size=3, progress=False)
    resumed, _ = counted.run(3, data, part, num_sweeps=3, start_sweep=4, chunk_size=3,
                             progress=False)
    jax.tree.map(np.testing.assert_array_equal, full, resumed)


def test_run_matches_repeated_sweeps_with_folded_keys():
    model = small_model()
    data = small_arhmm_data()
    state = model.init(0, data)
    ran, _ = model.run(5, data, state, num_sweeps=2, chunk_size=2, progress=False)
    stepped = state
    for sweep in range(2):
        stepped = model.sweep(jax.random.fold_in(jax.random.key(5), sweep), data, stepped)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10), ran, stepped)


def test_frozen_blocks_keep_their_values():
    model = small_model()
    data = small_arhmm_data()
    state = model.init(0, data)
    new = model.sweep(1, data, state, frozen=("ARDynamics",))
    np.testing.assert_array_equal(new["Ab"], state["Ab"])
    assert not np.array_equal(new["pi"], state["pi"])
    with pytest.raises(ValueError, match="not blocks of this plan"):
        model.sweep(1, data, state, frozen=("Nope",))


def test_no_key_is_reused():
    model = small_model()
    data = small_arhmm_data()
    with jax.debug_key_reuse(True):
        state = model.init(jax.random.key(0), data)
        model.sweep(jax.random.key(1), data, state)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 6])  # NaN at a chunk's start, middle, end
def test_nan_is_reported_with_sweep_and_block_and_last_good_state_kept(chunk_size):
    """The NaN flags are read at the end of each chunk; the chunk is replayed up to the last
    good state."""
    class Explodes(StickyDirTransitions):
        reads: ClassVar = ("z", "mask", "poison")

        def resample(self, key, data, state):
            new = super().resample(key, data, state)
            return {"pi": jnp.where(state["poison"] > 0, jnp.nan, new["pi"])}

    class Poison(GibbsBlock):
        writes: ClassVar = ("poison",)

        def resample(self, key, data, state):
            return {"poison": state["poison"] + 1}

        def sample_prior(self, key, state):
            return {"poison": jnp.asarray(-4)}

        def log_prob(self, data, state):
            return jnp.zeros(())

    base = small_model(transitions="sticky_dir")
    model = GibbsScheduler([Poison(), Explodes(4, kappa=10.0), *base.blocks[1:]],
                           data_keys=("x", "mask"))
    data = small_arhmm_data()
    state = model.init(0, data)
    with pytest.raises(NumericalFailure, match="sweep 4: Explodes") as failure:
        model.run(0, data, state, num_sweeps=6, chunk_size=chunk_size, progress=False)
    assert int(failure.value.state["poison"]) == 0  # after sweep 3, the last good one
    assert np.all(np.isfinite(failure.value.state["pi"]))
    assert failure.value.trace["log_joint"].shape == (4,)


def test_callbacks_see_unpadded_state_after_each_chunk():
    model = small_model()
    data = small_arhmm_data()
    seen = []
    model.run(0, data, model.init(0, data), num_sweeps=5, chunk_size=2, progress=False,
              callbacks=[lambda done, state, trace: seen.append((done, state["z"].shape,
                                                                 len(trace["log_joint"])))],
              summaries={"used": lambda data, state: jnp.unique(state["z"], size=4).size})
    assert seen == [(2, (3, 58), 2), (4, (3, 58), 4), (5, (3, 58), 5)]


def test_subclassed_block_runs_without_other_changes():
    class DiagonalNoiseAR(ARDynamics):
        """AR dynamics whose noise covariances are kept diagonal."""

        def resample(self, key, data, state):
            new = super().resample(key, data, state)
            return {"Ab": new["Ab"], "Q": jnp.eye(new["Q"].shape[-1]) * jnp.diagonal(
                new["Q"], axis1=-2, axis2=-1)[..., None, :]}

    dynamics = DiagonalNoiseAR.create(4, 2, 2)
    model = GibbsScheduler([HDPTransitions(4, kappa=10.0), dynamics, HMMStates(dynamics)],
                           data_keys=("x", "mask"))
    data = small_arhmm_data()
    state, _ = model.run(0, data, model.init(0, data), num_sweeps=3, progress=False)
    q = np.asarray(state["Q"])
    np.testing.assert_array_equal(q, q * np.eye(2))


def test_public_names():
    for name in ("GibbsBlock", "GibbsScheduler", "HDPTransitions", "StickyDirTransitions",
                 "HMMStates", "ARDynamics"):
        assert hasattr(moseq, name)
    assert callable(moseq.models.arhmm)


def test_simulate_draws_state_then_data_with_matching_shapes():
    model = small_model()
    shapes = {"mask": jnp.ones((3, 50))}
    data, state = model.simulate(0, shapes)
    assert data["x"].shape == (3, 50, 2) and state["z"].shape == (3, 48)
    assert np.all(np.isfinite(data["x"]))
    np.testing.assert_allclose(np.asarray(state["pi"]).sum(1), 1.0)
    again, _ = model.simulate(0, shapes)
    np.testing.assert_array_equal(again["x"], data["x"])
    assert np.isfinite(float(model.log_joint(data, state)))
