"""The block protocol holds: `writes` is required, undeclared reads fail when traced,
providers are referred to by name (one copy per plan), and two blocks of one class can share
a plan under different names."""

import functools
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.blocks import ARDynamics, HDPTransitions, HMMStates, StickyDirTransitions
from moseq.core import GibbsBlock, GibbsScheduler, PlanError, Provider, UndeclaredRead, gibbs
from moseq.core.block import RECORDING_INDEX
from moseq.models import arhmm, keypoint_slds
from moseq.testing import check_block


class Mean(GibbsBlock):
    """A variable `variable` ~ N(0, 1) a priori, resampled as N(mean of `source`, 1)."""

    variable: str = eqx.field(static=True, default="mu")
    source: str = eqx.field(static=True, default="y")
    shift: float = 0.0

    @property
    def writes(self):
        return (self.variable,)

    @property
    def reads(self):
        return (self.source, "mask")

    def resample(self, key, data, state):
        source = data[self.source] if self.source in data else state[self.source]
        mean = jnp.mean(source) + self.shift
        return {self.variable: mean + jax.random.normal(key, (), jnp.result_type(float))}

    def sample_prior(self, key, state):
        return {self.variable: jax.random.normal(key, (), jnp.result_type(float))}

    def log_prob(self, data, state):
        return -0.5 * state[self.variable] ** 2


def test_a_concrete_block_without_writes_is_refused_when_defined():
    with pytest.raises(TypeError, match="NoWrites does not declare `writes`"):
        class NoWrites(GibbsBlock):
            def resample(self, key, data, state):
                return {}

            def sample_prior(self, key, state):
                return {}

            def log_prob(self, data, state):
                return jnp.zeros(())

    class Abstract(GibbsBlock):  # abstract (no methods): allowed without writes
        pass

    class WritesNothing(GibbsBlock):
        writes: ClassVar = ()

        def resample(self, key, data, state):
            return {}

        def sample_prior(self, key, state):
            return {}

        def log_prob(self, data, state):
            return jnp.zeros(())

    assert WritesNothing().writes == ()


class PeekingTransitions(StickyDirTransitions):
    """Reads the AR noise Q without declaring it."""

    def resample(self, key, data, state):
        new = super().resample(key, data, state)
        return {"pi": new["pi"] * (1.0 + 0.0 * state["Q"].sum())}


class PeekingInit(StickyDirTransitions):
    def init(self, key, data, state):
        return {"pi": jnp.ones((self.num_states,) * 2) / self.num_states + 0 * data["x"].sum()}


class PeekingPrior(StickyDirTransitions):
    def sample_prior(self, key, state):
        return {"pi": super().sample_prior(key, state)["pi"] + 0 * state["mask"].sum()}


def data(num_recordings=2, num_frames=30, seed=0):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=(num_recordings, num_frames, 2)), axis=1) * 0.1
    return {"x": jnp.asarray(x), "mask": jnp.ones((num_recordings, num_frames))}


@pytest.mark.parametrize("block_type, method, declaration, variable", [
    (PeekingTransitions, "resample", "reads", "Q"),
    (PeekingInit, "init", "init_reads", "x"),
    (PeekingPrior, "sample_prior", "prior_reads", "mask"),
])
def test_an_undeclared_read_fails_when_traced(block_type, method, declaration, variable):
    dynamics = ARDynamics.create(3, 2, 1)
    model = GibbsScheduler([block_type(3, kappa=2.0), dynamics, HMMStates(dynamics)],
                           data_keys=("x", "mask"))
    message = (f"{block_type.__name__}.{method} read '{variable}', which it does not declare; "
               f"add it to `{declaration}`")
    with pytest.raises(UndeclaredRead, match=message):
        if method == "sample_prior":
            model.simulate(0, 2, 30)
        elif method == "init":
            model.init(0, data())
        else:
            model.sweep(1, data(), model.init(0, data()))


def test_declared_reads_suffice_for_every_shipped_model():
    """Every method of every block of the keypoint-SLDS (the shipped model with the most
    blocks and providers) works on the inputs it declares: simulation, init, a sweep in
    chunks of one recording and the log joint. An undeclared read fails while tracing, so
    the chain is traced (`jax.eval_shape`), not compiled."""
    model = keypoint_slds((0,), (1,), latent_dim=2, num_keypoints=4, num_states=3, nlags=1,
                          chunk_frames=20)
    blocks, chunks = model.bound_blocks, model.recording_chunks(20)
    assert chunks.size == 1  # two recordings: the chunked path

    def chain(key):
        keys = jax.random.split(key, 4)
        shapes = {"mask": jnp.ones((2, 20)), "conf": jnp.ones((2, 20, 4)),
                  RECORDING_INDEX: jnp.arange(2)}
        data = gibbs.sample_data(blocks, keys[1], gibbs.sample_prior(blocks, keys[0], shapes),
                                 shapes)
        state = gibbs.init_state(blocks, keys[2], data,
                                 step=functools.partial(gibbs.init_block, chunks=chunks))
        state, _ = gibbs.sweep(blocks, keys[3], data, state,
                               step=functools.partial(gibbs.resample_block, chunks=chunks))
        return state, gibbs.log_joint(blocks, data, state, chunks=chunks)

    state, log_joint = jax.eval_shape(chain, jax.random.key(0))
    assert set(state) == {v for block in blocks for v in block.writes}
    assert log_joint.shape == ()


def test_a_plan_holds_each_provider_once_and_an_edit_reaches_every_user():
    model = keypoint_slds((0,), (1,), latent_dim=2, num_keypoints=4, num_states=3, nlags=1)
    S_0 = model.block("ARDynamics").S_0
    copies = [leaf for leaf in jax.tree.leaves(model) if leaf is S_0 or (
        np.shape(leaf) == np.shape(S_0) and np.array_equal(leaf, S_0))]
    assert len(copies) == 1
    observations = model.blocks[model.block_names.index("KeypointObservations")]
    assert isinstance(model.blocks[model.block_names.index("KeypointHeading")].observations,
                      Provider)
    index = model.block_names.index("ARDynamics")
    edited = eqx.tree_at(lambda m: m.blocks[index].nu_0, model, 42.0)
    assert edited.block("HMMStates").likelihood.nu_0 == 42.0
    assert edited.block("KalmanLatents").dynamics.nu_0 == 42.0
    index = model.block_names.index("KeypointObservations")
    edited = eqx.tree_at(lambda m: m.blocks[index].conf_threshold, model, 0.9)
    for name in ("KalmanLatents", "KeypointHeading", "KeypointCentroid", "KeypointNoiseScales"):
        provider = edited.block(name).dependencies()[-1]
        assert provider.name == "KeypointObservations" and provider.conf_threshold == 0.9
    assert observations.conf_threshold == model.block("KeypointObservations").conf_threshold


def test_a_reference_says_where_the_block_is():
    model = arhmm(2, num_states=3, nlags=1)
    stored = model.blocks[model.block_names.index("HMMStates")]
    with pytest.raises(AttributeError, match=r"scheduler.block\(name\)"):
        stored.likelihood.state_log_likelihoods  # noqa: B018
    with pytest.raises(ValueError, match="provider references"):
        check_block(stored, data(), model.init(0, data()))


def test_a_provider_that_differs_from_the_plans_block_is_refused():
    dynamics = ARDynamics.create(3, 2, 1)
    other = ARDynamics.create(3, 2, 1, S_0_scale=0.5)
    with pytest.raises(PlanError, match="HMMStates holds a ARDynamics that differs"):
        GibbsScheduler([HDPTransitions(3), dynamics, HMMStates(other)], data_keys=("x", "mask"))
    # The plan's block, or a reference to it by name, are both accepted.
    by_name = GibbsScheduler([HDPTransitions(3), dynamics, HMMStates(Provider("ARDynamics"))],
                             data_keys=("x", "mask"))
    same = GibbsScheduler([HDPTransitions(3), dynamics, HMMStates(dynamics)],
                          data_keys=("x", "mask"))
    assert eqx.tree_equal(by_name, same)
    with pytest.raises(PlanError, match="HMMStates needs ARDynamics"):
        GibbsScheduler([HDPTransitions(3), HMMStates(Provider("ARDynamics"))],
                       data_keys=("x", "mask"))


class MeanOfMean(Mean):
    """Resampled around another block's variable, read through that block as a provider."""

    parent: Mean = None

    @property
    def reads(self):
        return ("mask",)

    def resample(self, key, data, state):
        centre = state[self.parent.variable] + self.shift
        return {self.variable: centre + jax.random.normal(key, (), jnp.result_type(float))}


def test_two_blocks_of_one_class_live_in_one_plan_under_different_names():
    first = Mean(variable="a", name="first")
    second = Mean(variable="b", shift=10.0, name="second")
    child = MeanOfMean(variable="c", parent=second, name="child")
    model = GibbsScheduler([first, second, child], data_keys=("y", "mask"))
    assert model.block_names == ("first", "second", "child")
    assert isinstance(model.blocks[2].parent, Provider) and model.blocks[2].parent.name == "second"
    y = {"y": jnp.full((2, 5), 3.0), "mask": jnp.ones((2, 5))}
    state = model.init(0, y)
    swept = model.sweep(1, y, state, frozen=("first",))
    assert swept["a"] == state["a"] and swept["b"] != state["b"]
    # The child reads b through its provider: shifting `second` moves c by its shift.
    edited = eqx.tree_at(lambda m: m.blocks[1].shift, model, 1000.0)
    assert edited.block("child").parent.shift == 1000.0
    keys = jax.random.split(jax.random.key(1), 3)
    updates, _ = gibbs.resample_block(edited.block("second"), keys[1], y, state)
    assert updates["b"] > 900.0
    with pytest.raises(PlanError, match="two blocks are named 'first'"):
        GibbsScheduler([first, Mean(variable="z", name="first")], data_keys=("y", "mask"))


def test_prepared_data_are_laid_out_once_and_give_the_same_chain():
    model = arhmm(2, num_states=3, nlags=1, kappa=10.0)
    raw = data()
    prepared = model.prepare(raw)
    assert model.prepare(prepared) is prepared
    state = model.init(0, raw)
    np.testing.assert_array_equal(model.init(0, prepared)["z"], state["z"])
    from_raw, trace_raw = model.run(1, raw, state, 3, progress=False)
    from_prepared, trace_prepared = model.run(1, prepared, state, 3, progress=False)
    for name in from_raw:
        np.testing.assert_array_equal(from_raw[name], from_prepared[name])
    np.testing.assert_array_equal(trace_raw["log_joint"], trace_prepared["log_joint"])
    mesh = jax.make_mesh((8,), ("batch",))
    sharded = arhmm(2, num_states=3, nlags=1, kappa=10.0, mesh=mesh)
    with pytest.raises(ValueError, match="prepared for another model or mesh"):
        sharded.run(1, prepared, state, 1, progress=False)
