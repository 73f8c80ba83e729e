"""moseq.testing.geweke and moseq.testing.sbc: the joint-distribution tests pass every shipped
block and catch deliberately broken ones.

Run as a script from the repository root (`python -m tests.test_testing_geweke [num_seeds]
[--sbc]`) for the many-seed study behind the fixed seeds here: the Geweke outcomes (pass /
fail / inconclusive) of every correct configuration and broken variant over `num_seeds`
seeds (default 20), and with `--sbc` how often SBC fails each.
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
    Verdict,
    default_test_functions,
    geweke_test,
    joint_draw,
    multiple_comparison,
    rank_uniformity,
    sbc,
)
from moseq.testing.geweke import _compare, welch_two_sided_p
from moseq.testing.joint import compile_test, evaluate, named_functions

NUM_STATES, LATENT_DIM, NLAGS = 3, 2, 1
SHAPES = {"mask": jnp.ones((2, 30))}
RAGGED = {"mask": np.ones((2, 30)) * (np.arange(30) < [[30], [22]])}  # recording 1: 22 frames


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


def toy_model(block_type=NormalMean, **fields) -> GibbsScheduler:
    return GibbsScheduler([block_type(**fields)], data_keys=("y", "mask"))


# ---- the shipped models, at test sizes ----------------------------------------------------


SHIPPED_AR_PRIOR = {"S_0_scale": 0.01, "K_0_scale": 10.0}
"""`ARDynamics.create`'s default S_0 and K_0: well-separated states, so the labels mix slowly
(where within-chain standard errors made correct samplers fail)."""


def arhmm_model(transitions=StickyDirTransitions, dynamics=ARDynamics, states=HMMStates, *,
                kappa=3.0, S_0_scale=0.1, K_0_scale=0.1, num_states=NUM_STATES):
    """Small AR-HMM whose test functions have finite variances: nu_0 = D + 8 (the inverse
    Wishart's fourth moments exist), by default K_0 = 0.1 I (stable dynamics). kappa is an
    array, so models that differ in kappa or the AR prior share their compiled tests."""
    ar = dynamics.create(num_states, LATENT_DIM, NLAGS, S_0_scale=S_0_scale,
                         K_0_scale=K_0_scale, nu_0=LATENT_DIM + 8)
    kappa = jnp.asarray(kappa, jnp.result_type(float))
    if transitions is HDPTransitions:
        transition_block = transitions(num_states, alpha=5.0, kappa=kappa, gamma=10.0)
    else:
        transition_block = transitions(num_states, beta=1.0, kappa=kappa)
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


BROKEN = {  # name: the arhmm_model options that plant the bug
    "transitions ignore kappa": {"transitions": TransitionsIgnoringKappa},
    "AR posterior drops M_0": {"dynamics": ARDroppingPriorMean},
    "z from filtered marginals": {"states": StatesFromFilteredMarginals},
}
SUBTLE = {
    "transitions use kappa / 2": {"transitions": TransitionsHalfKappa},
    "AR posterior nu_n + 1": {"dynamics": AROneExtraDegreeOfFreedom},
}
_MODELS: dict = {}


def cached(name, build):
    """One model object per variant, so its compiled test programs are reused."""
    if name not in _MODELS:
        _MODELS[name] = build()
    return _MODELS[name]


# ---- statistics ---------------------------------------------------------------------------


def test_between_chain_standard_errors_hold_where_chains_barely_move():
    """2000 replicate comparisons (one per column) of iid MC draws with 50 SC chains of 20
    steps of an AR(1) with rho = 0.95 from a stationary start: each chain is worth about one
    draw. The z-scores from the spread of the chains' means are calibrated; ones that take
    the 1000 SC values as independent are not."""
    rng = np.random.default_rng(0)
    replicates, draws, chains, steps, rho = 2000, 1000, 50, 20, 0.95
    mc = rng.normal(size=(draws, replicates))
    sc = np.empty((chains, steps, replicates))
    sc[:, 0] = rng.normal(size=(chains, replicates))
    for t in range(1, steps):
        sc[:, t] = rho * sc[:, t - 1] + np.sqrt(1 - rho**2) * rng.normal(size=(chains,
                                                                                replicates))
    report = _compare([f"g{i}" for i in range(replicates)], mc, sc, eps=1e-16, alpha=0.01,
                      correction="holm", min_ess=0.0, burn_in=0, thin=1)
    false_alarms = np.mean(report.p < 0.01)
    assert 0.004 < false_alarms < 0.017, false_alarms  # 0.01 +- 3 binomial sd
    assert 40 < np.median(report.ess_sc) < 90  # 1.4 draws per chain in theory: 68
    naive_z = (mc.mean(0) - sc.mean((0, 1))) / np.sqrt(1 / draws + 1 / (chains * steps))
    assert np.mean(np.abs(naive_z) > 2.576) > 0.3


def test_welch_p_values_are_student_t_and_normal_at_infinite_dof():
    stats = pytest.importorskip("scipy.stats")
    z, dof = np.array([0.0, 1.0, -2.5, 4.0, 8.0]), np.array([3.0, 10.0, 49.0, 200.0, 5.0])
    np.testing.assert_allclose(welch_two_sided_p(z, dof), 2 * stats.t.sf(np.abs(z), dof),
                               rtol=1e-4)
    np.testing.assert_allclose(welch_two_sided_p(z, np.inf), 2 * stats.norm.sf(np.abs(z)),
                               rtol=1e-12)
    assert welch_two_sided_p(np.inf, 5.0) == 0.0


def test_a_constant_function_agrees_to_rounding_in_float32():
    """The mean of a stochastic matrix, 1/3 up to float32 rounding that differs between the
    simulators: uninformative (z = 0), not a failure."""
    rng = np.random.default_rng(1)
    third = np.float32(1) / np.float32(3)
    ulp = np.spacing(third)
    mc = (third + ulp * rng.integers(-2, 2, size=(2000, 1))).astype(np.float32)
    sc = (third + ulp * rng.integers(-1, 3, size=(100, 20, 1))).astype(np.float32)
    report = _compare(["mean(pi)"], mc.astype(float), sc.astype(float),
                      eps=float(np.finfo(np.float32).eps), alpha=0.01, correction="holm",
                      min_ess=50.0, burn_in=0, thin=1)
    assert report.z[0] == 0 and report.passed, report


def test_a_verdict_has_three_outcomes_with_reasons():
    def verdict(rejected, inconclusive):
        return Verdict(("a", "b"), np.array(rejected), 0.01, "holm",
                       inconclusive=np.array(inconclusive), advice="run longer")

    passed = verdict([False, False], [False, False])
    assert passed.outcome == "pass" and passed.passed and passed.reason == ""
    assert passed._heading("T", "x").startswith("T PASSED: x")
    undecided = verdict([False, False], [False, True])
    assert undecided.outcome == "inconclusive" and not undecided.passed
    assert undecided.failures == () and undecided.undecided == ("b",)
    assert undecided.outcomes == ("pass", "inconclusive")
    assert undecided._heading("T", "x").startswith("T INCONCLUSIVE (undecided: b; run longer)")
    failed = verdict([True, False], [False, True])
    assert failed.outcome == "fail" and failed.failures == ("a",)
    assert failed._heading("T", "x").startswith("T FAILED (rejected: a)")
    assert Verdict(("a",), np.array([False]), 0.01, "holm").outcome == "pass"
    with pytest.raises(ValueError, match="both rejected and inconclusive"):
        verdict([True, False], [True, False])


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
    report = geweke_test(toy_model(), SHAPES, 400, num_chains=4, thin=2, burn_in=3,
                         test_functions={"mu": lambda v: v["mu"], "log_joint": LOG_JOINT,
                                         "mean_y": lambda v: jnp.mean(v["y"])})
    assert report.names == ("mu", "log_joint", "mean_y")
    assert report.mc_values.shape == (400, 3) and report.sc_values.shape == (4, 100, 3)
    row = report.table[0]
    assert row.name == "mu" and isinstance(row.z, float) and row.ess_sc > 0
    assert row.passed == (row.outcome == "pass") and report.outcomes[0] == row.outcome
    text = repr(report)
    assert text.startswith("Geweke test PASSED") and "mean_mc" in text and "mean_y" in text
    assert "4 SC chains x 100 steps after 3 sweeps, a step every 2 sweeps" in text


def test_the_restart_design_compares_independent_final_states():
    """One recorded step per chain, after 9 sweeps: the SC values are independent draws, so
    each chain is exactly one effective draw; the correct block passes, the broken fails."""
    restarts = {"num_chains": 1000, "num_sc_samples": 1000, "burn_in": 9}
    report = geweke_test(toy_model(), SHAPES, 1000, **restarts, seed=0)
    assert report.sc_values.shape == (1000, 1, 3) and report.passed, report
    np.testing.assert_allclose(report.ess_sc, 1000)
    broken = geweke_test(toy_model(NormalMeanOverconfident), SHAPES, 1000, **restarts, seed=0)
    assert broken.outcome == "fail" and "mean(mu^2)" in broken.failures, broken


def test_few_chains_that_barely_move_are_inconclusive_not_failed():
    """With precise data (noise variance 0.05 over 60 frames) a sweep moves mu by 3% of its
    prior spread: ten chains are worth about ten draws, too few to judge; the default 200
    chains are worth about 200, and pass."""
    model = toy_model(noise_variance=0.05)
    few = geweke_test(model, SHAPES, 1000, num_chains=10, seed=0)
    assert few.outcome == "inconclusive" and not few.passed and few.failures == (), few
    assert "mean(mu)" in few.undecided and np.all(few.ess_sc[few.inconclusive] < 50), few
    assert "num_chains" in few.reason and "INCONCLUSIVE" in repr(few)
    many = geweke_test(model, SHAPES, 1000, seed=0)
    assert many.passed and np.all(many.ess_sc > 50), many


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
    with pytest.raises(ValueError, match="num_chains >= 2"):
        geweke_test(toy_model(), SHAPES, 100, num_chains=1)


def test_default_test_functions_are_label_invariant():
    """Relabelling the states of a joint draw (z, and the rows of pi, Ab and Q) changes no
    default function; mean(z) is only there on request."""
    model = arhmm_model()
    functions = named_functions(default_test_functions(model, SHAPES))
    assert [name for name, _ in functions] == [
        "mean(pi)", "mean(pi^2)", "mean(Ab)", "mean(Ab^2)", "mean(Q)", "mean(Q^2)",
        "switch_rate(z)", "largest_occupancy(z)", "log_joint"]
    assert "mean(z)" in default_test_functions(model, SHAPES, label_invariant=False)

    @compile_test
    def before_and_after(model, key, functions):
        data, state = joint_draw(model, key, SHAPES)
        new_label = jnp.asarray([2, 0, 1])
        old_label = jnp.argsort(new_label)
        relabelled = {"z": new_label[state["z"]], "pi": state["pi"][old_label][:, old_label],
                      "Ab": state["Ab"][old_label], "Q": state["Q"][old_label]}
        assert set(relabelled) == set(state)
        return (evaluate(model, functions, data, state),
                evaluate(model, functions, data, relabelled))

    before, after = before_and_after(model, jax.random.key(5), functions)
    np.testing.assert_allclose(after, before, rtol=1e-12)


def test_largest_occupancy_counts_the_most_frequent_state_per_recording():
    function = default_test_functions(arhmm_model(), SHAPES)["largest_occupancy(z)"]
    z = jnp.asarray([[0, 2, 2, 1, 2], [1, 1, 1, 1, 1], [0, 1, 0, 1, 2]])
    np.testing.assert_allclose(function({"z": z}), np.mean([3 / 5, 5 / 5, 2 / 5]))


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


CORRECT_STICKY = {  # name: (arhmm_model options, data, seeds)
    "ragged batch": ({}, RAGGED, (0,)),
    "suite prior": ({}, SHAPES, (1, 2)),
    "shipped AR prior": (SHIPPED_AR_PRIOR, SHAPES, (0, 1, 2)),
    "shipped AR prior, low kappa": ({**SHIPPED_AR_PRIOR, "kappa": 0.5}, SHAPES, (0, 1, 2)),
}


@pytest.mark.slow
def test_shipped_sticky_arhmm_passes_over_priors_kappas_and_seeds():
    """StickyDir transitions, AR dynamics and HMM states. With the shipped AR prior, standard
    errors from within-chain effective sample sizes (4 chains of 500 steps) flagged this
    correct model at 31 seeds in 40 (kappa 0.5: 29); the many-seed study (this file as a
    script) finds no false alarm in 40 seeds of each configuration here. Every chain counts:
    the effective SC draws exceed 50 everywhere."""
    for name, (options, shapes, seeds) in CORRECT_STICKY.items():
        model = arhmm_model(**options)
        for seed in seeds:
            report = geweke_test(model, shapes, 2000, seed=seed)
            assert report.passed, f"{name}, seed {seed}:\n{report}"
            assert np.all(report.ess_sc > 50), report


@pytest.mark.slow
def test_shipped_hdp_arhmm_passes():
    """HDP transitions (betas and pi) in the AR-HMM, with a ragged batch."""
    report = geweke_test(arhmm_model(HDPTransitions), RAGGED, 2000, seed=0)
    assert report.passed, report


@pytest.mark.slow
def test_shipped_slds_blocks_pass():
    """Kalman latents and linear-Gaussian observations, within the SLDS."""
    report = geweke_test(slds_model(), {"mask": jnp.ones((1, 20))}, 2000, seed=0)
    assert report.passed, report


@pytest.mark.slow
def test_a_single_block_can_be_tested_with_the_others_held_fixed():
    model = cached("StickyDirTransitions", arhmm_model)
    assert geweke_test(model, SHAPES, 2000, blocks=["ARDynamics"], seed=0).passed
    broken = cached("AR posterior drops M_0",
                    lambda: arhmm_model(**BROKEN["AR posterior drops M_0"]))
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
    model = cached(bug, lambda: arhmm_model(**BROKEN[bug]))
    for seed in range(5):
        report = geweke_test(model, SHAPES, 2000, seed=seed)
        assert not report.passed, f"{bug} was not caught at seed {seed}:\n{report}"


CORRECT = {
    "sticky, suite prior": (arhmm_model, SHAPES),
    "sticky, ragged batch": (arhmm_model, RAGGED),
    "sticky, shipped AR prior": (lambda: arhmm_model(**SHIPPED_AR_PRIOR), SHAPES),
    "sticky, shipped AR prior, kappa 0.5": (
        lambda: arhmm_model(kappa=0.5, **SHIPPED_AR_PRIOR), SHAPES),
    "sticky, kappa 0.1": (lambda: arhmm_model(kappa=0.1), SHAPES),
    "sticky, K = 5, kappa 30": (lambda: arhmm_model(kappa=30.0, num_states=5), SHAPES),
    "HDP": (lambda: arhmm_model(HDPTransitions), SHAPES),
    "HDP, shipped AR prior": (lambda: arhmm_model(HDPTransitions, **SHIPPED_AR_PRIOR), SHAPES),
    "SLDS": (slds_model, {"mask": jnp.ones((1, 20))}),
    "toy": (toy_model, SHAPES),
}
VARIANTS = {
    **CORRECT,
    **{f"BUG {name}": (lambda bug=bug: arhmm_model(**bug), SHAPES)
       for name, bug in {**BROKEN, **SUBTLE}.items()},
    **{f"BUG {name}, shipped AR prior": (
        lambda bug=bug: arhmm_model(**bug, **SHIPPED_AR_PRIOR), SHAPES)
       for name, bug in BROKEN.items()},
    "BUG toy overconfident": (lambda: toy_model(NormalMeanOverconfident), SHAPES),
}


def calibration_study(num_seeds: int = 20, with_sbc: bool = False) -> None:  # pragma: no cover
    """Print, for every variant, the Geweke outcomes over seeds 0..num_seeds-1 (the defaults:
    2000 MC draws; 200 SC chains, each 10 sweeps then 10 recorded steps), the median and
    range over seeds of the largest |z|, and (`with_sbc`) how often SBC fails."""
    jax.config.update("jax_enable_x64", True)
    print(f"{'variant':<48} {'pass':>5} {'fail':>5} {'inconcl':>7}  max|z| median (range)"
          + ("  SBC failed" if with_sbc else ""))
    for name, (build, shapes) in VARIANTS.items():
        model = build()
        reports = [geweke_test(model, shapes, 2000, seed=s) for s in range(num_seeds)]
        outcomes = [r.outcome for r in reports]
        largest = [np.max(np.abs(r.z[np.isfinite(r.z)])) for r in reports]
        line = (f"{name:<48} {outcomes.count('pass'):>5} {outcomes.count('fail'):>5} "
                f"{outcomes.count('inconclusive'):>7}  {np.median(largest):6.1f} "
                f"({min(largest):.1f}-{max(largest):.1f})")
        if with_sbc:
            failed = sum(not sbc(model, shapes, 200, 60, thin=3, warmup=20, seed=s).passed
                         for s in range(num_seeds))
            line += f"  {failed:>5}/{num_seeds}"
        print(line, flush=True)


if __name__ == "__main__":  # pragma: no cover
    arguments = [a for a in sys.argv[1:] if a != "--sbc"]
    calibration_study(int(arguments[0]) if arguments else 20, "--sbc" in sys.argv)
