"""moseq.testing.check_block: every shipped block keeps the contract; broken ones are named."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.blocks import ARDynamics, HDPTransitions, HMMStates, StickyDirTransitions
from moseq.core import RECORDING_INDEX, recording_keys
from moseq.ops.distributions import sample_mniw
from moseq.ops.hmm import sample_hmm_stateseqs
from moseq.ops.transitions import (
    count_transitions,
    sample_betas,
    sample_dir_transitions,
    sample_pi,
)
from moseq.testing import ContractError, check_block
from tests.test_testing_geweke import (
    SHAPES,
    NormalMean,
    NormalMeanOverconfident,
    arhmm_model,
    slds_model,
    toy_model,
)


def ragged_mask(num_recordings=2, num_frames=30):
    mask = np.ones((num_recordings, num_frames))
    mask[1, num_frames - 8:] = 0
    return jnp.asarray(mask)


@pytest.fixture(scope="module")
def arhmm():
    model = arhmm_model(transitions=HDPTransitions)
    data, state = model.simulate(0, {"mask": ragged_mask()})
    return model, data, state


@pytest.fixture(scope="module")
def slds():
    model = slds_model()
    data, state = model.simulate(0, {"mask": ragged_mask(2, 20)})
    return model, data, state


# ---- the shipped blocks -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HDPTransitions", "ARDynamics", "HMMStates"])
def test_shipped_arhmm_blocks_keep_the_contract(arhmm, name):
    model, data, state = arhmm
    assert check_block(model.block(name), data, state) is None


def test_sticky_dir_transitions_keep_the_contract(arhmm):
    _, data, state = arhmm
    check_block(StickyDirTransitions(3, beta=1.0, kappa=3.0), data, state)


@pytest.mark.parametrize("name", ["LinearGaussianObservations", "KalmanLatents"])
def test_shipped_slds_blocks_keep_the_contract(slds, name):
    model, data, state = slds
    check_block(model.block(name), data, state)


def test_check_block_runs_the_geweke_test_of_a_scheduler():
    model = toy_model()
    data, state = model.simulate(0, SHAPES)
    report = check_block(model.blocks[0], data, state, scheduler=model, geweke_samples=500)
    assert report.passed
    broken = toy_model(NormalMeanOverconfident)
    with pytest.raises(ContractError, match="NormalMeanOverconfident: Geweke test"):
        check_block(broken.blocks[0], data, state, scheduler=broken, geweke_samples=1000)


# ---- broken blocks ------------------------------------------------------------------------


class TransitionsReusingKey(HDPTransitions):
    """Bug: betas and pi drawn with the same key."""

    def resample(self, key, data, state):
        counts = count_transitions(self.num_states, state["z"], data["mask"])
        betas = sample_betas(key, counts, state["betas"], self.alpha, self.kappa, self.gamma)
        return {"betas": betas, "pi": sample_pi(key, counts, betas, self.alpha, self.kappa)}


class StatesSharingOneKey(HMMStates):
    """Bug: every recording's path drawn with the same key."""

    def resample(self, key, data, state):
        log_likelihoods = self.likelihood.state_log_likelihoods(data, state)  # (T', N, K)
        num_frames, num_recordings = log_likelihoods.shape[:2]
        same_index = {RECORDING_INDEX: jnp.zeros(num_recordings, int)}
        keys = recording_keys(key, same_index, num_recordings)
        _, z = sample_hmm_stateseqs(keys, state["pi"], log_likelihoods,
                                    data["mask"][:, -num_frames:].T)
        return {"z": z.T}


class ARPriorSharingOneKey(ARDynamics):
    """Bug: every state's prior draw made with the same key."""

    def sample_prior(self, key, state):
        Ab, Q = jax.vmap(sample_mniw, in_axes=(None, None, None, None, None),
                         axis_size=self.num_states)(key, self.nu_0, self.S_0, self.M_0,
                                                    self.K_0)
        return {"Ab": Ab, "Q": Q}


class TransitionsWithFixedKey(StickyDirTransitions):
    """Bug: a hard-coded key."""

    def resample(self, key, data, state):
        return super().resample(jax.random.key(0), data, state)


class TransitionsWithNumpyRandomness(StickyDirTransitions):
    """Bug: host-side randomness, frozen into the compiled program at trace time."""

    def resample(self, key, data, state):
        noise = np.random.default_rng().random(state["pi"].shape)
        pi = state["pi"] + noise
        return {"pi": pi / pi.sum(1, keepdims=True)}


class TransitionsMutatingState(StickyDirTransitions):
    def resample(self, key, data, state):
        new = super().resample(key, data, state)
        state["pi"] = new["pi"]
        return new


class TransitionsWritingTooMuch(StickyDirTransitions):
    def resample(self, key, data, state):
        counts = count_transitions(self.num_states, state["z"], data["mask"])
        return {**super().resample(key, data, state), "counts": counts}


class TransitionsInFloat32(StickyDirTransitions):
    def resample(self, key, data, state):
        return {"pi": super().resample(key, data, state)["pi"].astype(jnp.float32)}


class TransitionsReadingUndeclared(StickyDirTransitions):
    def resample(self, key, data, state):
        counts = count_transitions(self.num_states, state["z"], data["mask"])
        boost = 1.0 + jnp.trace(state["Q"][0])
        return {"pi": sample_dir_transitions(key, counts, self.beta * boost, self.kappa)}


class TransitionsWithNaN(StickyDirTransitions):
    def sample_prior(self, key, state):
        return {"pi": jnp.full((self.num_states, self.num_states), jnp.nan)}


class TransitionsWithHostControlFlow(StickyDirTransitions):
    def resample(self, key, data, state):
        if float(state["pi"][0, 0]) > 0.5:
            return super().resample(key, data, state)
        return {"pi": state["pi"]}


class MeanWithWrongLogProb(NormalMean):
    def log_prob(self, data, state):
        return jnp.log(state["mu"] - state["mu"])  # -inf


def sticky(block_type):
    return block_type(3, beta=1.0, kappa=3.0)


BROKEN_CONTRACTS = [
    (lambda m: TransitionsReusingKey(3, alpha=5.0, kappa=3.0, gamma=10.0),
     "TransitionsReusingKey: resample reuses a random key"),
    (lambda m: StatesSharingOneKey(m.block("ARDynamics")),
     "StatesSharingOneKey: resample shares one key between recordings"),
    (lambda m: ARPriorSharingOneKey.create(3, 2, 1, S_0_scale=0.1, K_0_scale=0.1, nu_0=10.0),
     "ARPriorSharingOneKey: sample_prior shares one key along the leading axis of 'Ab'"),
    (lambda m: sticky(TransitionsWithFixedKey),
     "TransitionsWithFixedKey: resample ignores its key"),
    (lambda m: sticky(TransitionsWithNumpyRandomness),
     "TransitionsWithNumpyRandomness: resample (ignores its key|under vmap)"),
    (lambda m: sticky(TransitionsMutatingState),
     "TransitionsMutatingState: resample mutated its input.*'pi' was replaced"),
    (lambda m: sticky(TransitionsWritingTooMuch),
     r"TransitionsWritingTooMuch: resample must return exactly the declared writes.*counts"),
    (lambda m: sticky(TransitionsInFloat32),
     "TransitionsInFloat32: resample changed the shape or dtype of 'pi'"),
    (lambda m: sticky(TransitionsReadingUndeclared),
     "TransitionsReadingUndeclared: resample reads an undeclared variable.*'Q'"),
    (lambda m: sticky(TransitionsWithNaN),
     "TransitionsWithNaN: sample_prior drew a non-finite value"),
    (lambda m: sticky(TransitionsWithHostControlFlow),
     "TransitionsWithHostControlFlow: resample does not trace"),
]


@pytest.mark.parametrize("make_block, message", BROKEN_CONTRACTS,
                         ids=[message.split(":")[0] for _, message in BROKEN_CONTRACTS])
def test_broken_blocks_are_named_with_the_broken_property(arhmm, make_block, message):
    model, data, state = arhmm
    with pytest.raises(ContractError, match=message):
        check_block(make_block(model), data, state)


def test_a_non_finite_log_prob_is_flagged():
    model = toy_model(MeanWithWrongLogProb)
    data, state = model.simulate(0, SHAPES)
    with pytest.raises(ContractError, match=r"log_prob\(resample\) is not finite"):
        check_block(model.blocks[0], data, state)


def test_contract_errors_are_assertion_errors_and_inputs_are_checked():
    assert issubclass(ContractError, AssertionError)
    with pytest.raises(ValueError, match="lacks"):
        check_block(NormalMean(), {"mask": jnp.ones((2, 30)), "y": jnp.ones((2, 30))}, {})
    with pytest.raises(ValueError, match="num_keys"):
        check_block(NormalMean(), {"mask": jnp.ones((2, 30))}, {"mu": 0.0}, num_keys=1)
