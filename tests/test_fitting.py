"""Staged fitting, applying a fitted model to new recordings, syllable marginals, kappa scan.

The AR-HMM tests share one tiny model structure and one data shape, so the sweeps compile
once for the module; kappa is traced (`with_kappa`), so changing it does not recompile.
"""

import jax
import numpy as np
import pytest

from moseq.core import GibbsScheduler
from moseq.core.scheduler import as_key
from moseq.models import (
    AR_ONLY_FROZEN,
    AppliedModel,
    KappaScanRow,
    apply_model,
    ar_only_frozen,
    arhmm,
    fit_staged,
    global_frozen,
    kappa_scan,
    keypoint_slds,
    parameters,
    slds,
    staged_init,
    syllable_marginals,
    with_kappa,
)

K, D, L = 3, 2, 1
NUM_RECORDINGS, NUM_FRAMES = 2, 120


def stable_params(bias=1.0, noise=0.05, stay=0.95, latent_dim=D, num_states=K, nlags=L):
    """Contracting AR dynamics (0.9 I on the newest lag) with distinct biases per state."""
    Ab = np.zeros((num_states, latent_dim, latent_dim * nlags + 1))
    angles = 2 * np.pi * np.arange(num_states) / num_states
    for k in range(num_states):
        Ab[k, :, latent_dim * (nlags - 1) : latent_dim * nlags] = 0.9 * np.eye(latent_dim)
        Ab[k, :2, -1] = bias * np.array([np.cos(angles[k]), np.sin(angles[k])])
    pi = np.full((num_states, num_states), (1 - stay) / (num_states - 1))
    np.fill_diagonal(pi, stay)
    return {"Ab": Ab, "Q": np.tile(noise * np.eye(latent_dim), (num_states, 1, 1)), "pi": pi,
            "betas": np.ones(num_states) / num_states}


def tiny_arhmm(kappa=100.0, **kwargs):
    return with_kappa(arhmm(D, num_states=K, nlags=L, **kwargs), kappa)


MODEL = tiny_arhmm()


@pytest.fixture(scope="module")
def separated():
    """Data whose states the likelihood pins down (biases 1 apart, noise 0.05)."""
    return MODEL.simulate(0, NUM_RECORDINGS, NUM_FRAMES, given=stable_params())


@pytest.fixture(scope="module")
def ambiguous():
    """Data whose states overlap (biases 0.05 apart, noise 0.1): uncertain marginals."""
    return MODEL.simulate(1, NUM_RECORDINGS, NUM_FRAMES,
                          given=stable_params(bias=0.05, noise=0.1))


# ---- with_kappa, stage sets ----------------------------------------------------------------


def test_with_kappa_replaces_only_kappa():
    model = arhmm(D, num_states=K, nlags=L, kappa=10.0)
    changed = with_kappa(model, 1e4)
    assert model.block("HDPTransitions").kappa == 10.0
    assert float(changed.block("HDPTransitions").kappa) == 1e4
    assert changed.block("HDPTransitions").alpha == model.block("HDPTransitions").alpha
    sticky = with_kappa(arhmm(D, num_states=K, transitions="sticky_dir"), 5.0)
    assert float(sticky.block("StickyDirTransitions").kappa) == 5.0
    with pytest.raises(ValueError, match="kappa"):
        with_kappa(model, -1.0)
    with pytest.raises(TypeError, match="model"):
        with_kappa(model.blocks, 1.0)


def test_stage_block_sets_are_derived_from_block_types():
    keypoint = keypoint_slds((0,), (3,), latent_dim=D, num_keypoints=5, num_states=K, nlags=L)
    assert ar_only_frozen(keypoint) == tuple(sorted(AR_ONLY_FROZEN))
    assert global_frozen(keypoint) == ("ARDynamics", "HDPTransitions", "KeypointObservations")
    assert ar_only_frozen(MODEL) == ()
    assert global_frozen(MODEL) == ("ARDynamics", "HDPTransitions")
    switching = slds(np.ones((4, D + 1)), num_states=K, nlags=L)
    assert ar_only_frozen(switching) == ("KalmanLatents", "LinearGaussianObservations")
    assert global_frozen(switching) == ("ARDynamics", "HDPTransitions",
                                        "LinearGaussianObservations")
    assert parameters(MODEL, {"betas": 1, "pi": 2, "Ab": 3, "Q": 4, "z": 5}) == {
        "betas": 1, "pi": 2, "Ab": 3, "Q": 4}


# ---- marginals --------------------------------------------------------------------------


def test_marginals_sum_to_one_and_match_ffbs_draw_frequencies(ambiguous):
    data, truth = ambiguous
    probs, syllables = syllable_marginals(MODEL, data, truth)
    probs = np.asarray(probs)
    assert probs.shape == (NUM_RECORDINGS, NUM_FRAMES - L, K)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(syllables, probs.argmax(-1))
    assert 0.4 < probs.max(-1).mean() < 0.9  # genuinely uncertain, or the test says little

    block, prepared = MODEL.block("HMMStates"), MODEL.prepare_data(data)
    num_draws = 4000
    draw = jax.jit(jax.vmap(lambda key: block.resample(key, prepared, truth)["z"]))
    draws = np.asarray(draw(jax.random.split(jax.random.key(0), num_draws)))
    frequencies = np.stack([(draws == k).mean(0) for k in range(K)], axis=-1)
    stderr = np.sqrt(probs * (1 - probs) / num_draws) + 1.0 / num_draws
    assert np.max(np.abs(frequencies - probs) / stderr) < 5.5


def test_marginals_recover_well_separated_states(separated):
    data, truth = separated
    _, syllables = syllable_marginals(MODEL, data, truth)
    assert np.mean(np.asarray(syllables) == np.asarray(truth["z"])) > 0.95


def test_marginals_name_a_missing_variable(separated):
    data, truth = separated
    with pytest.raises(ValueError, match="Ab"):
        syllable_marginals(MODEL, data, {k: v for k, v in truth.items() if k != "Ab"})


# ---- fit_staged -------------------------------------------------------------------------


def test_fit_staged_is_two_runs_with_folded_keys(separated):
    data, _ = separated
    kwargs = dict(ar_sweeps=3, full_sweeps=4, ar_kappa=1e6, full_kappa=1e2, progress=False)
    state, trace = fit_staged(MODEL, 5, data, **kwargs)
    assert list(trace["stage"]) == ["ar"] * 3 + ["full"] * 4
    assert trace["log_joint"].shape == (7,)

    key = as_key(5)
    manual = MODEL.init(jax.random.fold_in(key, 0), data)
    manual, _ = with_kappa(MODEL, 1e6).run(jax.random.fold_in(key, 1), data, manual, 3,
                                           frozen=(), progress=False)
    manual, _ = with_kappa(MODEL, 1e2).run(jax.random.fold_in(key, 2), data, manual, 4,
                                           start_sweep=3, progress=False)
    for name in manual:
        np.testing.assert_array_equal(state[name], manual[name], err_msg=name)
    again, _ = fit_staged(MODEL, 5, data, **kwargs)
    np.testing.assert_array_equal(again["z"], state["z"])


def assert_same_fit(fit, expected):
    (state, trace), (expected_state, expected_trace) = fit, expected
    assert set(state) == set(expected_state) and set(trace) == set(expected_trace)
    for name, value in expected_state.items():
        np.testing.assert_array_equal(state[name], value, err_msg=name)
    for name, value in expected_trace.items():
        np.testing.assert_array_equal(trace[name], value, err_msg=name)


def test_fit_staged_resumed_at_any_sweep_is_the_uninterrupted_fit(separated):
    """From the state and trace of any chunk's end (AR-only stage, the switch, full stage,
    the end), the fit continues bit for bit; raising full_sweeps extends a finished fit."""
    data, _ = separated
    kwargs = dict(ar_sweeps=3, full_sweeps=4, ar_kappa=1e6, full_kappa=1e2, chunk_size=1,
                  progress=False)
    seen = {}

    def keep(sweeps_done, state, trace):
        seen[sweeps_done] = (state, trace)

    uninterrupted = fit_staged(MODEL, 5, data, callbacks=[keep], **kwargs)
    assert sorted(seen) == list(range(1, 8))
    # Callbacks see the trace of the whole fit so far, and so its stage.
    for sweeps_done, (_, trace) in seen.items():
        assert list(trace["stage"]) == (["ar"] * 3 + ["full"] * 4)[:sweeps_done]
        np.testing.assert_array_equal(trace["log_joint"],
                                      uninterrupted[1]["log_joint"][:sweeps_done])
    for start in (1, 2, 3, 4, 6, 7):
        state, trace = seen[start]
        resumed = fit_staged(MODEL, 5, data, state=state, start_sweep=start, trace=trace,
                             **kwargs)
        assert_same_fit(resumed, uninterrupted)
    started = fit_staged(MODEL, 5, data, state=staged_init(MODEL, 5, data, ar_kappa=1e6),
                         **kwargs)
    assert_same_fit(started, uninterrupted)

    short = fit_staged(MODEL, 5, data, **{**kwargs, "full_sweeps": 2})
    extended = fit_staged(MODEL, 5, data, state=short[0], start_sweep=5, trace=short[1],
                          **kwargs)
    assert_same_fit(extended, uninterrupted)
    with pytest.raises(ValueError, match="full_sweeps` to at least 5"):
        fit_staged(MODEL, 5, data, state=short[0], start_sweep=8, **kwargs)
    with pytest.raises(ValueError, match="state"):
        fit_staged(MODEL, 5, data, start_sweep=2, **kwargs)


def test_fit_staged_rejects_what_it_sets(separated):
    data, _ = separated
    with pytest.raises(TypeError, match="frozen"):
        fit_staged(MODEL, 0, data, frozen=())
    with pytest.raises(ValueError, match="ar_sweeps"):
        fit_staged(MODEL, 0, data, ar_sweeps=-1)


@pytest.mark.slow
def test_keypoint_stage_one_holds_the_observation_side_and_apply_fixes_parameters():
    model = keypoint_slds((0,), (3,), latent_dim=D, num_keypoints=5, num_states=K, nlags=L,
                          kappa=10.0)
    rng = np.random.default_rng(0)
    given = {**stable_params(), "Cd": rng.normal(size=((5 - 1) * 2, D + 1)),
             "sigmasq": np.ones(5)}
    data, truth = model.simulate(0, 2, 100, given=given)

    start = model.init(1, data)
    state, trace = fit_staged(model, 2, data, ar_sweeps=2, full_sweeps=0, state=start,
                              progress=False)
    assert list(trace["stage"]) == ["ar", "ar"]
    for name in ("x", "h", "v", "s", "Cd", "sigmasq"):
        np.testing.assert_array_equal(state[name], start[name], err_msg=name)
    for name in ("Ab", "Q", "pi", "z"):
        assert not np.array_equal(state[name], start[name]), name

    applied = apply_model(model, 3, data, truth, num_sweeps=2, progress=False)
    for name in ("Ab", "Q", "pi", "betas", "Cd", "sigmasq"):
        np.testing.assert_array_equal(applied.state[name], given.get(name, truth[name]),
                                      err_msg=name)
    assert applied.marginals.shape == (2, 100 - L, K)
    np.testing.assert_allclose(np.asarray(applied.marginals).sum(-1), 1.0, rtol=1e-9)


# ---- apply_model ------------------------------------------------------------------------


def test_apply_model_keeps_parameters_and_resamples_z(ambiguous):
    data, truth = ambiguous
    params = parameters(MODEL, truth)
    result = apply_model(MODEL, 3, data, truth, num_sweeps=3, marginal_sweeps=2,
                         progress=False)
    assert isinstance(result, AppliedModel)
    for name, value in params.items():
        np.testing.assert_array_equal(result.state[name], value, err_msg=name)
    assert result.trace["log_joint"].shape == (3,)

    # The same chain as one frozen run of three sweeps from init(given=params).
    key = as_key(3)
    start = MODEL.init(jax.random.fold_in(key, 0), data, given=params)
    expected, _ = MODEL.run(jax.random.fold_in(key, 1), data, start, 3,
                            frozen=global_frozen(MODEL), progress=False)
    np.testing.assert_array_equal(result.state["z"], expected["z"])
    assert not np.array_equal(result.state["z"], start["z"])

    marginals = np.asarray(result.marginals)
    assert marginals.shape == (NUM_RECORDINGS, NUM_FRAMES - L, K)
    np.testing.assert_allclose(marginals.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(result.syllables, marginals.argmax(-1))


def test_apply_model_and_fit_staged_prepare_the_data_once(ambiguous, monkeypatch):
    data, truth = ambiguous
    prepared = []
    original = GibbsScheduler.prepare_data
    monkeypatch.setattr(GibbsScheduler, "prepare_data",
                        lambda self, data: prepared.append(1) or original(self, data))
    apply_model(MODEL, 3, data, truth, num_sweeps=3, marginal_sweeps=2, progress=False)
    assert len(prepared) == 1
    fit_staged(MODEL, 0, data, ar_sweeps=1, full_sweeps=1, ar_kappa=10.0, progress=False)
    assert len(prepared) == 2


def test_apply_model_finds_the_syllables_of_new_recordings(separated):
    data, truth = separated
    new_data, new_truth = MODEL.simulate(7, NUM_RECORDINGS, NUM_FRAMES,
                                         given=parameters(MODEL, truth))
    result = apply_model(MODEL, 4, new_data, truth, num_sweeps=2, progress=False)
    assert np.mean(np.asarray(result.syllables) == np.asarray(new_truth["z"])) > 0.95
    none = apply_model(MODEL, 4, new_data, truth, num_sweeps=2, marginal_sweeps=0,
                       progress=False)
    assert none.marginals is None and none.syllables is None
    np.testing.assert_array_equal(none.state["z"], result.state["z"])


def test_apply_model_errors_name_the_argument(separated):
    data, truth = separated
    with pytest.raises(ValueError, match="params"):
        apply_model(MODEL, 0, data, {"pi": truth["pi"]})
    with pytest.raises(ValueError, match="marginal_sweeps"):
        apply_model(MODEL, 0, data, truth, num_sweeps=2, marginal_sweeps=3)
    with pytest.raises(TypeError, match="frozen"):
        apply_model(MODEL, 0, data, truth, frozen=())


# ---- kappa_scan -------------------------------------------------------------------------


def test_kappa_scan_durations_grow_with_kappa(ambiguous):
    data, _ = ambiguous
    rows = kappa_scan(MODEL, 0, data, [1.0, 1e2, 1e4], num_sweeps=20, fps=30.0,
                      keep_states=True, progress=False)
    assert [row.kappa for row in rows] == [1.0, 1e2, 1e4]
    assert all(isinstance(row, KappaScanRow) for row in rows)
    medians = [row.median_duration for row in rows]
    assert medians[0] < medians[1] < medians[2], medians
    for row in rows:
        assert row.median_duration_s == pytest.approx(row.median_duration / 30.0)
        assert row.state["z"].shape == (NUM_RECORDINGS, NUM_FRAMES - L)
        assert 1 <= row.num_syllables <= K and np.isfinite(row.log_joint)
    without = kappa_scan(MODEL, 0, data, [1.0], num_sweeps=20, progress=False)
    assert without[0].state is None and without[0].median_duration_s is None
    assert without[0].median_duration == rows[0].median_duration


def test_kappa_scan_errors_name_the_argument(separated):
    data, _ = separated
    with pytest.raises(ValueError, match="stage"):
        kappa_scan(MODEL, 0, data, [1.0], stage="both")
    with pytest.raises(ValueError, match="kappas"):
        kappa_scan(MODEL, 0, data, [-1.0])
    with pytest.raises(ValueError, match="fps"):
        kappa_scan(MODEL, 0, data, [1.0], fps=0)
