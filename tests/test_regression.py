"""The MNIW regression posterior against independent closed forms, and its draws' moments."""

import jax
import numpy as np
import pytest

from moseq.ops.regression import (
    MNIWParams,
    RegressionStats,
    combine_stats,
    mniw_posterior,
    regression_stats,
    resample_mniw,
    shift_stats,
)
from tests.helpers import assert_mean_within_mc_error


def random_spd(rng, n, ridge=0.5):
    G = rng.normal(size=(n, n))
    return G @ G.T / n + ridge * np.eye(n)


def random_prior(rng, d, p):
    return dict(
        nu_0=d + 3.0, S_0=random_spd(rng, d), M_0=rng.normal(size=(d, p)), K_0=random_spd(rng, p)
    )


def random_data(rng, num_points, d, p):
    inputs = np.concatenate([rng.normal(size=(num_points, p - 1)), np.ones((num_points, 1))], 1)
    outputs = inputs @ rng.normal(size=(p, d)) + 0.5 * rng.normal(size=(num_points, d))
    weights = (rng.uniform(size=num_points) > 0.2).astype(float)
    return inputs, outputs, weights


def posterior_by_residuals(inputs, outputs, weights, nu_0, S_0, M_0, K_0):
    """Independent closed form: weighted least squares with the prior as pseudo-data.

    K_n = (K_0⁻¹ + Xᵀ W X)⁻¹, M_n = (M_0 K_0⁻¹ + Yᵀ W X) K_n and
    S_n = S_0 + Σ w (y - M_n x)(y - M_n x)ᵀ + (M_n - M_0) K_0⁻¹ (M_n - M_0)ᵀ.
    """
    K_0_inv = np.linalg.inv(K_0)
    K_n = np.linalg.inv(K_0_inv + inputs.T @ (weights[:, None] * inputs))
    M_n = (M_0 @ K_0_inv + (weights[:, None] * outputs).T @ inputs) @ K_n
    residuals = outputs - inputs @ M_n.T
    S_n = S_0 + residuals.T @ (weights[:, None] * residuals) + (M_n - M_0) @ K_0_inv @ (M_n - M_0).T
    return nu_0 + weights.sum(), S_n, M_n, K_n


def joint_gram(stats):
    return np.block([[stats.S_xx, np.transpose(stats.S_yx)], [stats.S_yx, stats.S_yy]])


def test_regression_stats_are_weighted_sums_about_the_weighted_mean():
    rng = np.random.default_rng(0)
    inputs, outputs, weights = random_data(rng, 50, 2, 4)
    stats = regression_stats(inputs, outputs, weights)
    points = np.concatenate([inputs, outputs], axis=1)
    mean = weights @ points / weights.sum()
    mean[3] = 0.0  # the constant regressor is not shifted
    np.testing.assert_allclose(stats.shift, mean, rtol=1e-12)
    centred = points - mean
    np.testing.assert_allclose(joint_gram(stats), centred.T @ (weights[:, None] * centred),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.n, weights.sum())
    raw = shift_stats(stats, np.zeros(6))
    np.testing.assert_array_equal(raw.shift, 0.0)
    np.testing.assert_allclose(joint_gram(raw), points.T @ (weights[:, None] * points),
                               rtol=1e-12)
    np.testing.assert_allclose(joint_gram(regression_stats(inputs, outputs, weights,
                                                           shift=np.zeros(6))),
                               joint_gram(raw), rtol=1e-12)


def test_segments_are_independent_regressions():
    rng = np.random.default_rng(1)
    inputs, outputs, weights = random_data(rng, 60, 2, 3)
    segment_ids = rng.integers(0, 4, size=60)
    segment_ids[:5] = 7  # out of range: dropped
    together = regression_stats(inputs, outputs, weights, segment_ids, 4)
    for k in range(4):
        rows = segment_ids == k
        alone = regression_stats(inputs[rows], outputs[rows], weights[rows])
        for a, b in zip(together, alone, strict=True):
            np.testing.assert_allclose(a[k], b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_posterior_equals_independent_closed_form(seed):
    rng = np.random.default_rng(seed)
    d, p = int(rng.integers(1, 4)), int(rng.integers(2, 6))
    prior = random_prior(rng, d, p)
    inputs, outputs, weights = random_data(rng, 40, d, p)
    posterior = mniw_posterior(*regression_stats(inputs, outputs, weights), **prior)
    expected = posterior_by_residuals(inputs, outputs, weights, **prior)
    for actual, wanted in zip(posterior, expected, strict=True):
        np.testing.assert_allclose(actual, wanted, rtol=1e-9, atol=1e-12)
    assert isinstance(posterior, MNIWParams)


def test_posteriors_compose_and_empty_data_leaves_the_prior():
    """Conjugacy: updating on A then on B equals updating on A ∪ B; no data changes nothing."""
    rng = np.random.default_rng(5)
    d, p = 3, 4
    prior = random_prior(rng, d, p)
    first, second = random_data(rng, 30, d, p), random_data(rng, 25, d, p)
    second[0][:, :-1] += 2.0  # the two sets have different means, so different shifts
    stats_first, stats_second = regression_stats(*first), regression_stats(*second)
    both = combine_stats(stats_first, stats_second)
    union = regression_stats(*(np.concatenate(arrays) for arrays in zip(first, second,
                                                                          strict=True)))
    for a, b in zip(both, union, strict=True):  # about the union's mean, as if taken at once
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    at_once = mniw_posterior(*both, **prior)
    intermediate = mniw_posterior(*stats_first, **prior)
    in_turn = mniw_posterior(*stats_second, *intermediate)
    for a, b in zip(at_once, in_turn, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # Statistics about one shift add field by field.
    shared = [regression_stats(*data, shift=both.shift) for data in (first, second)]
    for a, b in zip(both[:4], (x + y for x, y in zip(*(s[:4] for s in shared),
                                                      strict=True)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)

    zero = regression_stats(*first[:2], np.zeros(30))
    unchanged = mniw_posterior(*zero, **prior)
    for a, b in zip(
        unchanged, (prior["nu_0"], prior["S_0"], prior["M_0"], prior["K_0"]), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("offset", [10.0, 100.0])
def test_shifted_posterior_equals_the_closed_form_for_poorly_centred_data(offset):
    """Float64: far from the origin, and about any shift (here a random one, and none), the
    posterior is the closed form's."""
    rng = np.random.default_rng(int(offset))
    d, p = 2, 4
    prior = random_prior(rng, d, p)
    inputs, outputs, weights = random_data(rng, 200, d, p)
    inputs[:, :-1] += offset
    outputs += offset * rng.normal(size=d)
    expected = posterior_by_residuals(inputs, outputs, weights, **prior)
    stats = regression_stats(inputs, outputs, weights)
    assert np.abs(stats.shift).max() > offset / 2
    other_shift = np.where(np.arange(p + d) == p - 1, 0.0, rng.normal(size=p + d) * offset)
    for moved in (stats, shift_stats(stats, other_shift), shift_stats(stats, np.zeros(p + d))):
        for actual, wanted in zip(mniw_posterior(*moved, **prior), expected, strict=True):
            np.testing.assert_allclose(actual, wanted, rtol=1e-9, atol=1e-9)


def test_regressors_without_a_constant():
    """The shift is taken along the last regressor whatever it is, so a non-affine
    regression is exact too."""
    rng = np.random.default_rng(12)
    d, p = 2, 3
    prior = random_prior(rng, d, p)
    inputs = 5.0 + rng.normal(size=(80, p))
    outputs = inputs @ rng.normal(size=(p, d)) + 0.3 * rng.normal(size=(80, d))
    weights = (rng.uniform(size=80) > 0.2).astype(float)
    stats = regression_stats(inputs, outputs, weights)
    assert stats.shift[p - 1] == 0 and np.abs(stats.shift).max() > 0
    expected = posterior_by_residuals(inputs, outputs, weights, **prior)
    for actual, wanted in zip(mniw_posterior(*stats, **prior), expected, strict=True):
        np.testing.assert_allclose(actual, wanted, rtol=1e-9, atol=1e-12)


def test_float32_scale_matrix_stays_positive_definite():
    """Many nearly noiseless, poorly centred points: in float32, S_n is a tiny difference of
    huge statistics. The direct formula S_0 + S_yy + M_0 K_0⁻¹ M_0ᵀ - M_n K_n⁻¹ M_nᵀ then has
    errors of hundreds of times the statistics' own rounding level eps·max|S_yy| and negative
    eigenvalues; the Schur-complement form stays symmetric positive definite and within a few
    (p + d) times that rounding level of the float64 answer."""
    rng = np.random.default_rng(6)
    d, p, num_points = 3, 4, 200_000
    inputs = np.concatenate(
        [10.0 + rng.normal(size=(num_points, p - 1)), np.ones((num_points, 1))], 1
    )
    outputs = inputs @ rng.normal(size=(p, d)) + 1e-3 * rng.normal(size=(num_points, d))
    weights = np.ones(num_points)
    prior = dict(nu_0=d + 2.0, S_0=1e-4 * np.eye(d), M_0=np.zeros((d, p)), K_0=10.0 * np.eye(p))
    f32 = lambda x: np.asarray(x, np.float32)
    stats = regression_stats(f32(inputs), f32(outputs), f32(weights))
    posterior = mniw_posterior(
        *stats, prior["nu_0"], *(f32(prior[k]) for k in ("S_0", "M_0", "K_0"))
    )
    assert posterior.S.dtype == np.float32
    S_n = np.asarray(posterior.S)
    np.testing.assert_array_equal(S_n, S_n.T)
    assert np.linalg.eigvalsh(S_n).min() > 0
    _, exact, _, _ = posterior_by_residuals(inputs, outputs, weights, **prior)
    rounding_level = np.finfo(np.float32).eps * np.abs(np.asarray(stats.S_yy)).max()
    assert np.abs(S_n - exact).max() < 4 * (p + d) * rounding_level


def float32_posterior_and_reference(offset, noise, seed, num_points=200_000, shuffle=False):
    """S_n of a float32 fit of poorly centred, nearly noiseless points, the float64 S_n of
    the same (float32) data, and the statistics' rounding level eps·max|S_yy|."""
    rng = np.random.default_rng(seed)
    d, p = 3, 4
    inputs = np.concatenate(
        [offset + rng.normal(size=(num_points, p - 1)), np.ones((num_points, 1))], 1)
    outputs = inputs @ rng.normal(size=(p, d)) + noise * rng.normal(size=(num_points, d))
    weights = (rng.uniform(size=num_points) > 0.1).astype(float)
    if shuffle:  # another summation order
        order = np.random.default_rng(seed + 100).permutation(num_points)
        inputs, outputs, weights = inputs[order], outputs[order], weights[order]
    inputs, outputs, weights = (np.asarray(a, np.float32) for a in (inputs, outputs, weights))
    prior = dict(nu_0=d + 2.0, S_0=1e-4 * np.eye(d), M_0=np.zeros((d, p)), K_0=10.0 * np.eye(p))
    stats = FLOAT32_STATS(inputs, outputs, weights)
    posterior = FLOAT32_POSTERIOR(stats, prior["nu_0"],
                                  *(np.float32(prior[k]) for k in ("S_0", "M_0", "K_0")))
    _, exact, _, _ = posterior_by_residuals(*(np.asarray(a, float) for a in
                                              (inputs, outputs, weights)), **prior)
    rounding_level = np.finfo(np.float32).eps * np.abs(np.asarray(stats.S_yy)).max()
    return np.asarray(posterior.S), exact, rounding_level, p + d


FLOAT32_STATS = jax.jit(regression_stats)
FLOAT32_POSTERIOR = jax.jit(lambda stats, *prior: mniw_posterior(*stats, *prior))


@pytest.mark.parametrize("offset, noise, seed", [
    (offset, noise, seed)
    for seed, (offset, noise) in enumerate(
        (offset, noise) for offset in (1e1, 1e2, 1e3) for noise in (1e-1, 1e-2, 1e-3, 1e-4))
])
def test_float32_scale_matrix_over_scales(offset, noise, seed):
    """Offsets 1e1..1e3, noise 1e-1..1e-4, 200,000 points: S_n is symmetric positive
    definite and within 4 (p + d) times the statistics' rounding level eps·max|S_yy| of the
    float64 answer. The statistics are about each state's mean, so that level is set by the
    outputs' spread, not by their distance from the origin (with raw sums it is up to 1e6
    times larger, and S_n was NaN)."""
    S_n, exact, rounding_level, size = float32_posterior_and_reference(offset, noise, seed)
    np.testing.assert_array_equal(S_n, S_n.T)
    assert np.linalg.eigvalsh(S_n).min() > 0
    assert np.abs(S_n - exact).max() < 4 * size * rounding_level


@pytest.mark.parametrize("offset, noise, seed", [(1e1, 1e-3, 20), (1e3, 1e-4, 21)])
def test_float32_scale_matrix_does_not_depend_on_the_summation_order(offset, noise, seed):
    """The same points shuffled (a different order of every sum): still positive definite
    and as close to the float64 answer."""
    for shuffle in (False, True):
        S_n, exact, rounding_level, size = float32_posterior_and_reference(
            offset, noise, seed, shuffle=shuffle)
        assert np.linalg.eigvalsh(S_n).min() > 0
        assert np.abs(S_n - exact).max() < 4 * size * rounding_level


def test_resample_mniw_moments():
    rng = np.random.default_rng(7)
    d, p = 2, 3
    prior = random_prior(rng, d, p)
    stats = regression_stats(*random_data(rng, 20, d, p))
    posterior = mniw_posterior(*stats, **prior)
    num_draws = 40_000
    keys = jax.random.split(jax.random.key(0), num_draws)
    draw = jax.jit(jax.vmap(lambda key: resample_mniw(key, stats, **prior)))
    Ab, Q = map(np.asarray, draw(keys))
    assert_mean_within_mc_error(Q, posterior.S / (posterior.nu - d - 1))
    assert_mean_within_mc_error(Ab, posterior.M)


def test_vmap_over_states_matches_one_at_a_time():
    rng = np.random.default_rng(8)
    d, p, num_states = 2, 3, 4
    prior = random_prior(rng, d, p)
    stats = [regression_stats(*random_data(rng, 15, d, p)) for _ in range(num_states)]
    stacked = RegressionStats(*map(np.stack, zip(*stats, strict=True)))
    together = jax.vmap(mniw_posterior, in_axes=(0, 0, 0, 0, 0, None, None, None, None))(
        *stacked, prior["nu_0"], prior["S_0"], prior["M_0"], prior["K_0"]
    )
    for k in range(num_states):
        alone = mniw_posterior(*stats[k], **prior)
        for a, b in zip(together, alone, strict=True):
            np.testing.assert_allclose(a[k], b, rtol=1e-12, atol=1e-14)


def test_bad_inputs_name_the_argument():
    rng = np.random.default_rng(9)
    prior = random_prior(rng, 2, 3)
    stats = regression_stats(*random_data(rng, 10, 2, 3))
    with pytest.raises(ValueError, match="S_xx"):
        mniw_posterior(np.eye(4), *stats[1:], **prior)
    with pytest.raises(ValueError, match="S_yy"):
        mniw_posterior(stats.S_xx, stats.S_yx, np.eye(3), stats.n, stats.shift, **prior)
    with pytest.raises(ValueError, match="shift"):
        mniw_posterior(*stats[:4], np.zeros(4), **prior)
    with pytest.raises(ValueError, match="nu_0"):
        mniw_posterior(*stats, **{**prior, "nu_0": -1.0})
    with pytest.raises(ValueError, match="`n`"):
        mniw_posterior(*stats[:3], -2.0, stats.shift, **prior)
    with pytest.raises(ValueError, match="K_0"):
        mniw_posterior(*stats, **{**prior, "K_0": np.eye(2)})
    with pytest.raises(ValueError, match="outputs"):
        regression_stats(np.zeros((5, 3)), np.zeros((4, 2)), np.ones(5))
    with pytest.raises(ValueError, match="weights"):
        regression_stats(np.zeros((5, 3)), np.zeros((5, 2)), np.ones((5, 1)))
