"""moseq.testing.geweke and moseq.testing.sbc: the joint-distribution tests pass every shipped
block and catch deliberately broken ones.

Run as a script (`python tests/test_testing_geweke.py`) to print the power table: how often
each broken variant is caught over several seeds, by the Geweke test and by SBC.
"""

from __future__ import annotations

import sys
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.blocks import (
    ARDynamics,
    HDPTransitions,
    HMMStates,
    KalmanLatents,
    LinearGaussianObservations,
    StickyDirTransitions,
)
from moseq.core import GibbsBlock, GibbsScheduler, recording_keys
from moseq.ops.autoregression import ar_sufficient_stats
from moseq.ops.hmm import hmm_filter
from moseq.ops.regression import mniw_posterior
from moseq.ops.transitions import count_transitions, sample_dir_transitions
from moseq.testing import (
    LOG_JOINT,
    effective_sample_size,
    geweke_test,
    joint_draw,
    multiple_comparison,
    rank_uniformity,
    sbc,
)

NUM_STATES, LATENT_DIM, NLAGS = 3, 2, 1
SHAPES = {"mask": jnp.ones((2, 30))}


# ---- a conjugate toy block: fast to compile, for the machinery ---------------------------


class NormalMean(GibbsBlock):
    """mu ~ N(0, prior_variance); y[n, t] ~ N(mu, noise_variance) on unmasked frames.

    `sample_data` gets the state only, so the data's shape is a field.
    """

    data_shape: tuple[int, int] = eqx.field(static=True, default=(2, 30))
    prior_variance: float = 1.0
    noise_variance: float = 30.0

    writes: ClassVar = ("mu",)
    reads: ClassVar = ("y", "mask")

    def posterior(self, data):
        mask = data["mask"]
        precision = 1 / self.prior_variance + jnp.sum(mask) / self.noise_variance
        return jnp.sum(data["y"] * mask) / self.noise_variance / precision, precision

    def resample(self, key, data, state):
        mean, precision = self.posterior(data)
        return {"mu": mean + jax.random.normal(key, (), mean.dtype) / jnp.sqrt(precision)}

    def sample_prior(self, key, state):
        dtype = jnp.result_type(float)
        return {"mu": jnp.sqrt(self.prior_variance) * jax.random.normal(key, (), dtype)}

    def log_prob(self, data, state):
        mu = state["mu"]
        prior = -0.5 * (mu**2 / self.prior_variance + jnp.log(2 * jnp.pi * self.prior_variance))
        frames = -0.5 * ((data["y"] - mu) ** 2 / self.noise_variance
                         + jnp.log(2 * jnp.pi * self.noise_variance))
        return prior + jnp.sum(frames * data["mask"])

    def sample_data(self, key, state):
        mu = state["mu"]
        noise = jax.random.normal(key, self.data_shape, mu.dtype)
        return {"y": mu + jnp.sqrt(self.noise_variance) * noise}


class NormalMeanOverconfident(NormalMean):
    """Bug: the posterior precision counts every frame twice."""

    def posterior(self, data):
        mean, precision = super().posterior(data)
        return mean, 2 * precision


def toy_model(block_type=NormalMean) -> GibbsScheduler:
    return GibbsScheduler([block_type()], data_keys=("y", "mask"))


# ---- the shipped models, at test sizes ----------------------------------------------------


def arhmm_model(transitions=StickyDirTransitions, dynamics=ARDynamics, states=HMMStates):
    """Small AR-HMM whose test functions have finite variances: nu_0 = D + 8 (the inverse
    Wishart's fourth moments exist), K_0 = 0.1 I (stable dynamics)."""
    ar = dynamics.create(NUM_STATES, LATENT_DIM, NLAGS, S_0_scale=0.1, K_0_scale=0.1,
                         nu_0=LATENT_DIM + 8)
    if transitions is HDPTransitions:
        transition_block = transitions(NUM_STATES, alpha=5.0, kappa=3.0, gamma=10.0)
    else:
        transition_block = transitions(NUM_STATES, beta=1.0, kappa=3.0)
    return GibbsScheduler([transition_block, ar, states(ar)], data_keys=("x", "mask"))


def slds_model():
    """Small SLDS: stable latent dynamics (M_0 = 0.5 I) and noisy observations, so the
    latents mix in the successive-conditional chain."""
    M_0 = np.concatenate([0.5 * np.eye(LATENT_DIM), np.zeros((LATENT_DIM, 1))], axis=1)
    ar = ARDynamics.create(2, LATENT_DIM, NLAGS, S_0_scale=0.1, K_0_scale=0.1,
                           nu_0=LATENT_DIM + 8, M_0=M_0)
    Cd = jnp.asarray([[1.0, 0.0, 0.1], [0.0, 1.0, -0.1], [0.5, 0.5, 0.0]])
    emissions = LinearGaussianObservations(Cd=Cd, nu_sigma=10.0, sigmasq_0=0.3)
    latents = KalmanLatents(ar, emissions, prior_variance=1.0)
    return GibbsScheduler([StickyDirTransitions(2, beta=1.0, kappa=3.0), ar, HMMStates(ar),
                           emissions, latents], data_keys=("Y", "mask"))


# ---- deliberately broken blocks -----------------------------------------------------------


class TransitionsIgnoringKappa(StickyDirTransitions):
    """Bug: the posterior forgets the sticky term (the prior keeps it)."""

    def resample(self, key, data, state):
        counts = count_transitions(self.num_states, state["z"], data["mask"])
        return {"pi": sample_dir_transitions(key, counts, self.beta, 0.0)}


class ARDroppingPriorMean(ARDynamics):
    """Bug: the posterior uses M_0 = 0 (the prior keeps the identity on the newest lag)."""

    def posterior(self, data, state):
        stats = ar_sufficient_stats(self._trajectory(data, state), state["z"], data["mask"],
                                    self.num_states, self.nlags)
        return jax.vmap(mniw_posterior, in_axes=(0, 0, 0, 0, 0, None, None, None, None))(
            *stats, self.nu_0, self.S_0, jnp.zeros_like(self.M_0), self.K_0)


class StatesFromFilteredMarginals(HMMStates):
    """Bug: each z_t drawn independently from the filtered marginal p(z_t | x_{0:t}),
    without backward conditioning."""

    def resample(self, key, data, state):
        log_likelihoods = self.likelihood.state_log_likelihoods(data, state)
        num_recordings = data["mask"].shape[0]
        if log_likelihoods.shape[0] != num_recordings:  # time-major providers
            log_likelihoods = jnp.swapaxes(log_likelihoods, 0, 1)
        mask = data["mask"][:, -log_likelihoods.shape[1]:]

        def one(key, evidence, frames):
            _, filtered = hmm_filter(state["pi"], evidence, frames)
            return jax.random.categorical(key, jnp.log(filtered), axis=-1)

        keys = recording_keys(key, data, num_recordings)
        return {"z": jax.vmap(one)(keys, log_likelihoods, mask)}


class TransitionsHalfKappa(StickyDirTransitions):
    """Subtle bug (power table only): the posterior uses kappa / 2."""

    def resample(self, key, data, state):
        counts = count_transitions(self.num_states, state["z"], data["mask"])
        return {"pi": sample_dir_transitions(key, counts, self.beta, self.kappa / 2)}


class AROneExtraDegreeOfFreedom(ARDynamics):
    """Subtle bug (power table only): the inverse-Wishart posterior has nu_n + 1."""

    def posterior(self, data, state):
        nu_n, S_n, M_n, K_n = super().posterior(data, state)
        return nu_n + 1, S_n, M_n, K_n


BROKEN = {
    "transitions ignore kappa": lambda: arhmm_model(transitions=TransitionsIgnoringKappa),
    "AR posterior drops M_0": lambda: arhmm_model(dynamics=ARDroppingPriorMean),
    "z from filtered marginals": lambda: arhmm_model(states=StatesFromFilteredMarginals),
}
SUBTLE = {
    "transitions use kappa / 2": lambda: arhmm_model(transitions=TransitionsHalfKappa),
    "AR posterior nu_n + 1": lambda: arhmm_model(dynamics=AROneExtraDegreeOfFreedom),
}
_MODELS: dict = {}


def cached(name, build):
    """One model object per variant, so its compiled test programs are reused."""
    if name not in _MODELS:
        _MODELS[name] = build()
    return _MODELS[name]


# ---- statistics ---------------------------------------------------------------------------


def test_effective_sample_size_of_iid_and_autocorrelated_chains():
    rng = np.random.default_rng(0)
    iid = rng.normal(size=20000)
    assert 0.9 < effective_sample_size(iid) / iid.size < 1.1
    rho, x = 0.9, np.zeros(20000)
    for t in range(1, x.size):
        x[t] = rho * x[t - 1] + rng.normal()
    expected = x.size * (1 - rho) / (1 + rho)
    assert 0.75 < effective_sample_size(x) / expected < 1.25
    assert effective_sample_size(np.ones(100)) == 100


def test_holm_is_uniformly_more_powerful_than_bonferroni():
    p = np.array([0.001, 0.003, 0.03, 0.5])
    np.testing.assert_array_equal(multiple_comparison(p, 0.01, "bonferroni"),
                                  [True, False, False, False])
    np.testing.assert_array_equal(multiple_comparison(p, 0.01, "holm"),
                                  [True, True, False, False])
    with pytest.raises(ValueError, match="holm"):
        multiple_comparison(p, 0.01, "sidak")


def test_rank_uniformity_accepts_uniform_and_rejects_u_shaped_ranks():
    rng = np.random.default_rng(1)
    uniform = rng.integers(0, 21, size=400)
    u_shaped = np.where(rng.random(400) < 0.5, rng.integers(0, 3, 400), rng.integers(18, 21, 400))
    _, p = rank_uniformity(np.stack([uniform, u_shaped], 1), num_draws=20, num_bins=7)
    assert p[0] > 0.01 and p[1] < 1e-10


# ---- the machinery, on the toy ------------------------------------------------------------


def test_joint_draw_is_the_schedulers_simulate():
    model = toy_model()
    data, state = joint_draw(model, jax.random.key(3), SHAPES)
    again_data, again_state = model.simulate(jax.random.key(3), SHAPES)
    np.testing.assert_allclose(state["mu"], again_state["mu"], rtol=1e-12)
    np.testing.assert_allclose(data["y"], again_data["y"], rtol=1e-12)


def test_toy_passes_and_its_overconfident_variant_fails():
    report = geweke_test(toy_model(), SHAPES, 1000, seed=0)
    assert report.passed, report
    broken = geweke_test(toy_model(NormalMeanOverconfident), SHAPES, 1000, seed=0)
    assert not broken.passed and "mean(mu^2)" in broken.failures, broken


def test_a_bare_block_is_wrapped_in_a_scheduler():
    report = geweke_test(NormalMean(), SHAPES, 500, seed=1)
    assert report.passed and report.names == ("mean(mu)", "mean(mu^2)", "log_joint"), report


def test_report_table_repr_and_shapes():
    report = geweke_test(toy_model(), SHAPES, 400, num_chains=2, thin=2, burn_in=3,
                         test_functions={"mu": lambda v: v["mu"], "log_joint": LOG_JOINT,
                                         "mean_y": lambda v: jnp.mean(v["y"])})
    assert report.names == ("mu", "log_joint", "mean_y")
    assert report.mc_values.shape == (400, 3) and report.sc_values.shape == (2, 200, 3)
    row = report.table[0]
    assert row.name == "mu" and isinstance(row.z, float) and row.passed == (not row.p < 0)
    text = repr(report)
    assert text.startswith("Geweke test PASSED") and "mean_mc" in text and "mean_y" in text


def test_test_functions_as_a_sequence_use_their_names():
    def mu_cubed(variables):
        return variables["mu"] ** 3

    report = geweke_test(toy_model(), SHAPES, 200, test_functions=[mu_cubed])
    assert report.names == ("mu_cubed",)


def test_non_scalar_and_non_finite_test_functions():
    with pytest.raises(ValueError, match="must return a scalar"):
        geweke_test(toy_model(), SHAPES, 100, test_functions={"y": lambda v: v["y"]})
    report = geweke_test(toy_model(), SHAPES, 100,
                         test_functions={"log|mu|": lambda v: jnp.log(v["mu"] * 0)})
    assert not report.passed and report.nonfinite[0] > 0
    assert "non-finite" in repr(report)


def test_bad_arguments_are_refused_before_compiling():
    with pytest.raises(ValueError, match="'mask'"):
        geweke_test(toy_model(), {"y": jnp.ones((2, 3))}, 100)
    with pytest.raises(ValueError, match="not blocks of this plan"):
        geweke_test(toy_model(), SHAPES, 100, blocks=["Nope"])
    with pytest.raises(ValueError, match="cannot hold HMMStates fixed"):
        geweke_test(arhmm_model(), SHAPES, 100, blocks=["StickyDirTransitions"])


def test_plot_needs_matplotlib(monkeypatch, tmp_path):
    report = geweke_test(toy_model(), SHAPES, 100)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        report.plot(tmp_path / "pp.png")
    ranks = sbc(toy_model(), SHAPES, 40, 10, thin=1, warmup=0)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        ranks.plot(tmp_path / "ranks.png")


def test_plots_are_written_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib")
    geweke_test(toy_model(), SHAPES, 100).plot(tmp_path / "pp.png")
    sbc(toy_model(), SHAPES, 40, 10, thin=1, warmup=0).plot(tmp_path / "ranks.png")
    assert (tmp_path / "pp.png").stat().st_size > 0 and (tmp_path / "ranks.png").exists()


def test_sbc_toy_passes_and_overconfident_variant_fails():
    report = sbc(toy_model(), SHAPES, 200, 20, thin=1, warmup=5, seed=0)
    assert report.passed, report
    assert report.ranks.shape == (200, 3) and report.ranks.max() <= 20
    assert "histogram" in repr(report)
    broken = sbc(toy_model(NormalMeanOverconfident), SHAPES, 200, 20, thin=1, warmup=5, seed=0)
    assert not broken.passed, broken


# ---- every shipped block passes ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("transitions", [StickyDirTransitions, HDPTransitions])
def test_shipped_arhmm_blocks_pass(transitions):
    """StickyDir/HDP transitions, AR dynamics and HMM states, with a ragged batch; the
    sticky model at five seeds (a correct sampler fails about one seed in a hundred)."""
    model = cached(transitions.__name__, lambda: arhmm_model(transitions=transitions))
    mask = np.ones((2, 30))
    mask[1, 22:] = 0
    report = geweke_test(model, {"mask": mask}, 3000, seed=0)
    assert report.passed, report
    assert np.all(report.ess_sc[np.abs(report.z) > 0] > 50), report
    if transitions is StickyDirTransitions:
        passes = sum(geweke_test(model, SHAPES, 2000, seed=s).passed for s in range(1, 5))
        assert passes >= 3


@pytest.mark.slow
def test_shipped_slds_blocks_pass():
    """Kalman latents and linear-Gaussian observations, within the SLDS."""
    report = geweke_test(slds_model(), {"mask": jnp.ones((1, 20))}, 2000, seed=0)
    assert report.passed, report


@pytest.mark.slow
def test_a_single_block_can_be_tested_with_the_others_held_fixed():
    model = cached("StickyDirTransitions", arhmm_model)
    assert geweke_test(model, SHAPES, 2000, blocks=["ARDynamics"], seed=0).passed
    broken = cached("AR posterior drops M_0", BROKEN["AR posterior drops M_0"])
    report = geweke_test(broken, SHAPES, 2000, blocks=["ARDroppingPriorMean"], seed=0)
    assert not report.passed and "mean(Ab)" in report.failures, report


@pytest.mark.slow
def test_sbc_passes_the_shipped_arhmm():
    model = cached("StickyDirTransitions", arhmm_model)
    report = sbc(model, SHAPES, 200, 60, thin=3, warmup=20, seed=0)
    assert report.passed, report


# ---- every deliberate bug is caught -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("bug", sorted(BROKEN))
def test_broken_blocks_fail_at_every_seed(bug):
    model = cached(bug, BROKEN[bug])
    for seed in range(5):
        report = geweke_test(model, SHAPES, 2000, seed=seed)
        assert not report.passed, f"{bug} was not caught at seed {seed}:\n{report}"


def power_table(num_seeds: int = 5) -> None:  # pragma: no cover - a script
    """Print how often each variant fails the Geweke test and SBC over `num_seeds` seeds."""
    jax.config.update("jax_enable_x64", True)
    variants = {"correct (sticky Dir)": arhmm_model,
                "correct (HDP)": lambda: arhmm_model(transitions=HDPTransitions),
                **BROKEN, **SUBTLE}
    print(f"{'variant':<28} {'Geweke failed':>14} {'SBC failed':>11}")
    for name, build in variants.items():
        model = build()
        geweke = sum(not geweke_test(model, SHAPES, 2000, seed=s).passed
                     for s in range(num_seeds))
        calibration = sum(not sbc(model, SHAPES, 200, 60, thin=3, warmup=20, seed=s).passed
                          for s in range(num_seeds))
        print(f"{name:<28} {geweke:>9}/{num_seeds} {calibration:>8}/{num_seeds}", flush=True)


if __name__ == "__main__":  # pragma: no cover
    power_table()
