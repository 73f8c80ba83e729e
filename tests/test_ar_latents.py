"""The banded (information-form) sampler of switching AR trajectories, against the dense
Gaussian posterior built independently from the model's definition (float64)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.ops.ar_latents import (
    NOISE_PER_FRAME,
    sample_ar_latents,
    sample_ar_latents_with_noise,
)
from tests.helpers import assert_mean_within_mc_error


def _system(rng, num_frames, latent_dim, nlags, obs_dim=3, num_states=3):
    Ab = 0.4 * rng.normal(size=(num_states, latent_dim, latent_dim * nlags + 1))
    roots = rng.normal(size=(num_states, latent_dim, latent_dim))
    Q = roots @ np.swapaxes(roots, 1, 2) + 0.3 * np.eye(latent_dim)
    return {
        "ys": rng.normal(size=(num_frames, obs_dim)),
        "variances": rng.uniform(0.2, 2.0, size=(num_frames, obs_dim)),
        "zs": rng.integers(num_states, size=num_frames - nlags),
        "Ab": Ab, "Q": Q,
        "C": rng.normal(size=(obs_dim, latent_dim)),
        "d": rng.normal(size=obs_dim),
        "prior_variance": 2.5,
    }


def _dense_posterior(s, unobserved=()):
    """Mean and covariance of x_{0:T} (flattened frame-major) given y (without the frames
    `unobserved`), by writing x as an affine function of independent standard normals and
    conditioning jointly."""
    num_frames, latent_dim = s["ys"].shape[0], s["Q"].shape[-1]
    nlags = (s["Ab"].shape[-1] - 1) // latent_dim
    n = num_frames * latent_dim
    coef, const = np.zeros((n, n)), np.zeros(n)
    block = lambda t: slice(t * latent_dim, (t + 1) * latent_dim)
    for t in range(nlags):
        coef[block(t), block(t)] = np.sqrt(s["prior_variance"]) * np.eye(latent_dim)
    for t in range(nlags, num_frames):
        Ab = s["Ab"][s["zs"][t - nlags]]
        for lag in range(nlags):  # Ab's blocks are oldest first: x_{t-L} .. x_{t-1}
            A = Ab[:, lag * latent_dim:(lag + 1) * latent_dim]
            source = t - nlags + lag
            coef[block(t)] += A @ coef[block(source)]
            const[block(t)] += A @ const[block(source)]
        const[block(t)] += Ab[:, -1]
        coef[block(t), block(t)] += np.linalg.cholesky(s["Q"][s["zs"][t - nlags]])
    prior_cov = coef @ coef.T
    observed = np.setdiff1d(np.arange(num_frames), unobserved)
    H = np.kron(np.eye(num_frames)[observed], s["C"])
    R = np.diag(s["variances"][observed].reshape(-1))
    y = (s["ys"] - s["d"])[observed].reshape(-1)
    gain = prior_cov @ H.T @ np.linalg.inv(H @ prior_cov @ H.T + R)
    return const + gain @ (y - H @ const), prior_cov - gain @ H @ prior_cov


@pytest.mark.parametrize("num_frames,latent_dim,nlags", [(7, 2, 2), (6, 1, 3), (5, 2, 1),
                                                          (3, 2, 3), (9, 3, 2)])
def test_mean_and_covariance_are_the_dense_posterior(num_frames, latent_dim, nlags):
    s = _system(np.random.default_rng(num_frames + latent_dim), num_frames, latent_dim,
                nlags)
    shape = (num_frames, NOISE_PER_FRAME, latent_dim)
    draw = jax.jit(lambda noise: sample_ar_latents_with_noise(noise, **s).reshape(-1))
    mean, cov = _dense_posterior(s)
    np.testing.assert_allclose(draw(jnp.zeros(shape)), mean, rtol=1e-9, atol=1e-9)
    jacobian = jax.jacfwd(draw)(jnp.zeros(shape)).reshape(mean.size, -1)
    np.testing.assert_allclose(jacobian @ jacobian.T, cov, rtol=1e-8, atol=1e-9)


def test_jitter_adds_its_variance_to_each_conditional_draw():
    s = _system(np.random.default_rng(0), 6, 2, 2)
    shape = (6, NOISE_PER_FRAME, 2)
    jacobian = jax.jacfwd(lambda e: sample_ar_latents_with_noise(e, **s, jitter=0.01))(
        jnp.zeros(shape))
    # The jitter noise of frame t moves frame t by sqrt(jitter), and older frames only
    # through their dependence on it.
    np.testing.assert_allclose(jacobian[:, :, :, 1][np.arange(6), :, np.arange(6)],
                               0.1 * np.broadcast_to(np.eye(2), (6, 2, 2)), rtol=1e-12)


def test_masked_frame_is_unobserved():
    """A frame with a huge emission variance is imputed from the dynamics alone: the same
    posterior as dropping its observation from the dense conditioning."""
    s = _system(np.random.default_rng(5), 8, 2, 2)
    mean, _ = _dense_posterior(s, unobserved=[4])
    s["variances"][4] = 1e12
    s["ys"][4] = s["d"]
    out = sample_ar_latents_with_noise(np.zeros((8, 2, 2)), **s).reshape(-1)
    np.testing.assert_allclose(out, mean, rtol=1e-8, atol=1e-8)


def test_float32_draws_follow_the_posterior():
    """End to end with its own normal draws, in float32 (the dtype of a fit)."""
    s = _system(np.random.default_rng(2), 8, 2, 3)
    s32 = {k: (np.asarray(v, np.float32) if k != "zs" else v) for k, v in s.items()}
    keys = jax.random.split(jax.random.key(0), 4000)
    x = jax.vmap(lambda k: sample_ar_latents(k, **s32))(keys)
    assert x.dtype == jnp.float32
    mean, cov = _dense_posterior(s)
    samples = np.asarray(x, np.float64).reshape(len(keys), -1)
    assert_mean_within_mc_error(samples, mean)
    centred = samples - mean
    assert_mean_within_mc_error(centred[:, :, None] * centred[:, None, :], cov)


def test_keyed_sampler_is_the_noise_kernel_with_its_key_draws():
    s = _system(np.random.default_rng(3), 7, 2, 2)
    s32 = {k: (np.asarray(v, np.float32) if k != "zs" else v) for k, v in s.items()}
    key = jax.random.key(4)
    noise = jax.random.normal(key, (7, NOISE_PER_FRAME, 2), jnp.float32)
    expected = sample_ar_latents_with_noise(noise, **s32, jitter=0.01)
    draw = sample_ar_latents(key, *s32.values(), jitter=0.01)
    assert draw.dtype == jnp.float32
    np.testing.assert_array_equal(draw, expected)  # the same operations, eagerly
    np.testing.assert_allclose(jax.jit(sample_ar_latents)(key, **s32, jitter=0.01), expected,
                               rtol=1e-5, atol=1e-5)
    keyed, with_noise = (inspect.signature(f).parameters
                         for f in (sample_ar_latents, sample_ar_latents_with_noise))
    assert list(keyed)[0] == "key" and list(with_noise)[0] == "noise"
    assert list(keyed.values())[1:] == list(with_noise.values())[1:]


def test_bad_arguments_name_themselves():
    s = _system(np.random.default_rng(1), 6, 2, 2)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`zs`"):
        sample_ar_latents(key, **dict(s, zs=s["zs"][:-1]))
    with pytest.raises(ValueError, match="`Ab`"):
        sample_ar_latents(key, **dict(s, Ab=s["Ab"][..., :-1]))
    with pytest.raises(ValueError, match="`C`"):
        sample_ar_latents(key, **dict(s, C=s["C"].T))
    with pytest.raises(ValueError, match="`jitter`"):
        sample_ar_latents(key, **s, jitter=-1.0)
    with pytest.raises(ValueError, match="`noise`"):
        sample_ar_latents_with_noise(np.zeros((6, 1, 2)), **s)


@pytest.mark.slow
def test_float32_long_sequence_is_finite_and_tracks_the_data():
    """T = 100,000 frames, D = 10, L = 3, 18 observed coordinates, float32: no NaN, and the
    draw stays close to well-observed data (the emission noise is small)."""
    rng = np.random.default_rng(10)
    num_frames, latent_dim, nlags, obs_dim = 100_000, 10, 3, 18
    Ab = np.zeros((2, latent_dim, latent_dim * nlags + 1), np.float32)
    Ab[:, :, -latent_dim - 1:-1] = 0.95 * np.eye(latent_dim)
    x = np.cumsum(0.1 * rng.normal(size=(num_frames, latent_dim)), axis=0) * 0.05
    C = rng.normal(size=(obs_dim, latent_dim)).astype(np.float32)
    ys = (x @ C.T + 0.01 * rng.normal(size=(num_frames, obs_dim))).astype(np.float32)
    draw = jax.jit(sample_ar_latents)(
        jax.random.key(2), ys, np.full((num_frames, obs_dim), 1e-4, np.float32),
        rng.integers(2, size=num_frames - nlags),
        Ab, np.tile(0.01 * np.eye(latent_dim, dtype=np.float32), (2, 1, 1)), C,
        np.zeros(obs_dim, np.float32), jitter=1e-3)
    assert draw.dtype == jnp.float32
    draw = np.asarray(draw)
    assert np.all(np.isfinite(draw))
    assert np.abs(draw - x).mean() < 0.1
