"""Exactness of the switching Kalman smoother and sampler against dense Gaussian conditioning.

The dense reference writes every state as a linear function of the initial state and the
process noises, forms the joint Gaussian of all states and observations, and conditions it
with NumPy. The sampler is checked exactly through its noise parametrisation: the draw is an
affine function of the standard-normal noise whose value at zero is the posterior mean and
whose Jacobian J satisfies J Jᵀ = posterior covariance (of the whole path).
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from moseq.ops.kalman import (
    NOISE_PER_FRAME,
    ar_to_lds_dynamics,
    ar_to_lds_emissions,
    kalman_sample,
    kalman_sample_with_noise,
    kalman_smoother,
    psd_sqrt,
)

# --------------------------------------------------------------------------------------------
# Random systems and the dense reference


def random_system(rng, num_frames, state_dim, obs_dim, num_states, singular_q=False):
    """A random switching system with padded frames (mask 0) and, optionally, singular Q."""
    A = 0.7 * rng.normal(size=(num_states, state_dim, state_dim)) / np.sqrt(state_dim)
    B = rng.normal(size=(num_states, state_dim))
    G = rng.normal(size=(num_states, state_dim, state_dim))
    Q = G @ np.swapaxes(G, 1, 2) / state_dim + 0.1 * np.eye(state_dim)
    if singular_q:  # noiseless first half of the state, as in the shift blocks of an AR lift
        half = state_dim // 2
        Q[:, :half, :] = 0.0
        Q[:, :, :half] = 0.0
    G0 = rng.normal(size=(state_dim, state_dim))
    mask = (rng.uniform(size=num_frames) > 0.3).astype(float)
    return dict(
        ys=2.0 * rng.normal(size=(num_frames, obs_dim)),
        mask=mask,
        zs=rng.integers(0, num_states, size=num_frames - 1),
        m0=rng.normal(size=state_dim),
        S0=G0 @ G0.T / state_dim + 0.5 * np.eye(state_dim),
        A=A,
        B=B,
        Q=Q,
        C=rng.normal(size=(obs_dim, state_dim)),
        D=rng.normal(size=obs_dim),
        Rs=rng.uniform(0.2, 2.0, size=(num_frames, obs_dim)),
        masked_dynamics_params=dict(
            weights=0.5 * np.eye(state_dim), bias=np.zeros(state_dim), cov=2.0 * np.eye(state_dim)
        ),
        masked_obs_noise=rng.uniform(5.0, 10.0, size=obs_dim),
    )


def dense_posterior(system):
    """(mean (T, n), covariance (T n, T n), log p(y)) by dense conditioning in NumPy."""
    ys, mask, zs = system["ys"], system["mask"], system["zs"]
    num_frames, state_dim = ys.shape[0], system["m0"].shape[0]
    masked = system["masked_dynamics_params"]
    dynamics = [
        (system["A"][zs[t]], system["B"][zs[t]], system["Q"][zs[t]])
        if mask[t] > 0
        else (masked["weights"], masked["bias"], masked["cov"])
        for t in range(num_frames - 1)
    ]
    # x_t = prior_mean_t + sum_s transfer[t, s] noise_s, noise_0 ~ N(0, S0), noise_s ~ N(0, Q).
    prior_mean = [system["m0"]]
    for F, b, _ in dynamics:
        prior_mean.append(F @ prior_mean[-1] + b)
    transfer = np.zeros((num_frames * state_dim, num_frames * state_dim))
    noise_cov = np.zeros_like(transfer)
    block = lambda i: slice(i * state_dim, (i + 1) * state_dim)
    noise_cov[block(0), block(0)] = system["S0"]
    for t in range(num_frames):
        product = np.eye(state_dim)
        for s in range(t, -1, -1):
            transfer[block(t), block(s)] = product
            if s > 0:
                product = product @ dynamics[s - 1][0]
        if t > 0:
            noise_cov[block(t), block(t)] = dynamics[t - 1][2]
    state_cov = transfer @ noise_cov @ transfer.T
    H = np.kron(np.eye(num_frames), system["C"])
    variances = np.where(mask[:, None] > 0, system["Rs"], system["masked_obs_noise"][None])
    obs_cov = H @ state_cov @ H.T + np.diag(variances.reshape(-1))
    obs_mean = H @ np.concatenate(prior_mean) + np.tile(system["D"], num_frames)
    gain = state_cov @ H.T @ np.linalg.inv(obs_cov)
    mean = np.concatenate(prior_mean) + gain @ (ys.reshape(-1) - obs_mean)
    cov = state_cov - gain @ H @ state_cov
    log_likelihood = multivariate_normal(obs_mean, obs_cov).logpdf(ys.reshape(-1))
    return mean.reshape(num_frames, state_dim), 0.5 * (cov + cov.T), log_likelihood


def marginal_blocks(cov, state_dim):
    num_frames = cov.shape[0] // state_dim
    return np.stack(
        [
            cov[t * state_dim : (t + 1) * state_dim, t * state_dim : (t + 1) * state_dim]
            for t in range(num_frames)
        ]
    )


def cheaply_compiled(fn, *example_args):
    """`jax.jit(fn)` compiled at XLA optimisation level 0: these tests check maths, not speed."""
    return jax.jit(fn).lower(*example_args).compile({"xla_backend_optimization_level": 0})


# (num_frames, state_dim, obs_dim, num_states, singular_q): T = 1, scalar states, more
# observations than states and the reverse, noiseless directions in Q.
SMALL_CASES = [
    (1, 2, 1, 1, False),
    (2, 1, 2, 2, False),
    (5, 3, 2, 3, True),
    (6, 2, 3, 2, False),
    (8, 4, 3, 2, True),
    (7, 4, 1, 3, False),
]


def small_system(case_index):
    num_frames, state_dim, obs_dim, num_states, singular_q = SMALL_CASES[case_index]
    rng = np.random.default_rng(case_index)
    return random_system(rng, num_frames, state_dim, obs_dim, num_states, singular_q)


def exact_summaries(system, noise, jitter, parallel):
    """Smoother, and the sampler's value at zero noise, Jacobian and value at `noise`."""
    posterior = kalman_smoother(**system, parallel=parallel)
    draw = lambda eps: kalman_sample_with_noise(eps, **system, jitter=jitter, parallel=parallel)
    zero = jnp.zeros_like(noise)
    return posterior, draw(zero), jax.jacfwd(draw)(zero), draw(noise)


# --------------------------------------------------------------------------------------------
# Smoother and sampler against dense conditioning


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("case_index", range(len(SMALL_CASES)))
def test_smoother_and_sampler_equal_dense_conditioning(case_index, parallel):
    """Smoother marginals and log p(y) are exact; the sampler is x(ε) = μ + J ε with
    J Jᵀ = Σ over the whole path, i.e. x ~ N(μ, Σ) exactly; jitter adds exactly to it."""
    system = small_system(case_index)
    mean, cov, log_likelihood = dense_posterior(system)
    num_frames, state_dim = mean.shape
    noise = np.random.default_rng(case_index).normal(size=(num_frames, NOISE_PER_FRAME, state_dim))
    summaries = cheaply_compiled(
        lambda s, e, j: exact_summaries(s, e, j, parallel), system, noise, 0.0
    )
    posterior, at_zero, jacobian, at_noise = summaries(system, noise, 0.0)

    np.testing.assert_allclose(posterior.means, mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        posterior.covariances, marginal_blocks(cov, state_dim), rtol=1e-8, atol=1e-10
    )
    np.testing.assert_allclose(posterior.log_likelihood, log_likelihood, rtol=1e-10)

    np.testing.assert_allclose(at_zero, mean, rtol=1e-8, atol=1e-10)
    jacobian = np.asarray(jacobian).reshape(num_frames * state_dim, -1)
    np.testing.assert_allclose(jacobian @ jacobian.T, cov, rtol=1e-8, atol=1e-10)
    affine = mean.reshape(-1) + jacobian @ noise.reshape(-1)
    np.testing.assert_allclose(np.asarray(at_noise).reshape(-1), affine, rtol=1e-8, atol=1e-9)

    # Jitter: the last frame is drawn from its filtered Gaussian + jitter·I exactly; every other
    # conditional draw adds jitter·I on top of the exact posterior.
    jitter = 0.3
    _, _, jacobian, _ = summaries(system, noise, jitter)
    jacobian = np.asarray(jacobian).reshape(num_frames * state_dim, -1)
    excess = jacobian @ jacobian.T - cov
    np.testing.assert_allclose(
        excess[-state_dim:, -state_dim:], jitter * np.eye(state_dim), atol=1e-10
    )
    assert np.linalg.eigvalsh(excess).min() > -1e-10
    assert np.all(np.diag(excess) >= jitter - 1e-10)


def test_sequential_and_parallel_agree_on_long_sequences():
    """Smoothers to 1e-8 on T = 1,000 (with noiseless directions), and identical draws."""
    rng = np.random.default_rng(7)
    system = random_system(rng, 1000, 4, 3, 5, singular_q=True)
    noise = rng.normal(size=(1000, NOISE_PER_FRAME, 4))
    results = []
    for parallel in (False, True):
        fn = lambda s, e, j, parallel=parallel: (
            kalman_smoother(**s, parallel=parallel),
            kalman_sample_with_noise(e, **s, jitter=j, parallel=parallel),
        )
        compiled = cheaply_compiled(fn, system, noise, 0.0)
        results.append((compiled(system, noise, 0.0), compiled(system, noise, 0.05)))
    (sequential, sequential_jittered), (parallel, parallel_jittered) = results
    np.testing.assert_allclose(parallel[0].means, sequential[0].means, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        parallel[0].covariances, sequential[0].covariances, rtol=1e-8, atol=1e-10
    )
    np.testing.assert_allclose(parallel[0].log_likelihood, sequential[0].log_likelihood, rtol=1e-10)
    np.testing.assert_allclose(parallel[1], sequential[1], rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(parallel_jittered[1], sequential_jittered[1], rtol=1e-8, atol=1e-9)
    assert not np.allclose(parallel_jittered[1], parallel[1])


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [False, True])
def test_sample_moments_match_dense_posterior(parallel):
    """End to end through `kalman_sample` (its own normal draws): 20,000 draws of a path."""
    rng = np.random.default_rng(11)
    system = random_system(rng, 6, 3, 2, 3)
    mean, cov, _ = dense_posterior(system)
    num_draws = 20_000
    keys = jax.random.split(jax.random.key(5), num_draws)
    draw = jax.vmap(lambda key, s: kalman_sample(key, **s, parallel=parallel), in_axes=(0, None))
    draws = cheaply_compiled(draw, keys, system)(keys, system)
    draws = np.asarray(draws).reshape(num_draws, -1)
    mean = mean.reshape(-1)
    # Means: z-scores from the exact covariance.
    z_means = (draws.mean(0) - mean) / np.sqrt(np.diag(cov) / num_draws)
    assert np.abs(z_means).max() < 5, np.abs(z_means).max()
    # Covariances about the exact mean: Var[(x_i - μ_i)(x_j - μ_j)] = Σ_ii Σ_jj + Σ_ij².
    centred = draws - mean
    sample_cov = centred.T @ centred / num_draws
    stderr = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / num_draws)
    z_covs = (sample_cov - cov) / stderr
    assert np.abs(z_covs).max() < 5, np.abs(z_covs).max()


@pytest.mark.parametrize("parallel", [False, True])
def test_vmap_over_recordings_matches_single_calls_and_keeps_float32(parallel):
    rng = np.random.default_rng(4)
    system = random_system(rng, 20, 3, 2, 2)
    system = jax.tree_util.tree_map(
        lambda x: np.asarray(x, np.float32) if np.asarray(x).dtype == np.float64 else x, system
    )
    per_recording = ("ys", "mask", "zs", "Rs")
    batched = {
        key: np.stack([system[key], *(random_system(rng, 20, 3, 2, 2)[key] for _ in range(2))])
        for key in per_recording
    }
    batched = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in batched.items()}
    shared = {k: v for k, v in system.items() if k not in per_recording}
    keys = jax.random.split(jax.random.key(0), 3)

    def sample_and_smooth(key, recording):
        arguments = {**shared, **recording}
        return kalman_sample(key, **arguments, parallel=parallel), kalman_smoother(
            **arguments, parallel=parallel
        )

    single = {k: v[0] for k, v in batched.items()}
    alone = cheaply_compiled(sample_and_smooth, keys[0], single)
    together = cheaply_compiled(jax.vmap(sample_and_smooth), keys, batched)(keys, batched)
    for i in range(3):
        draw, posterior = alone(keys[i], {k: v[i] for k, v in batched.items()})
        np.testing.assert_allclose(together[0][i], draw, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(together[1].means[i], posterior.means, rtol=1e-5, atol=1e-5)
    assert together[0].dtype == np.float32
    assert together[1].means.dtype == np.float32
    assert together[1].covariances.dtype == np.float32
    assert together[1].log_likelihood.dtype == np.float32


def test_keyed_sampler_is_the_noise_kernel_with_its_key_draws():
    """`kalman_sample(key, ...)` = `kalman_sample_with_noise(N(0, I) from key, ...)`, the
    draws in the model's dtype (float32 here, though the mask is float64), and both share
    one parameter list."""
    system = random_system(np.random.default_rng(11), 9, 3, 2, 2)
    system = {k: v if k in ("mask", "zs", "masked_dynamics_params") else np.float32(v)
              for k, v in system.items()}
    key = jax.random.key(5)
    noise = jax.random.normal(key, (9, NOISE_PER_FRAME, 3), jnp.float32)
    for parallel in (False, True):
        expected = kalman_sample_with_noise(noise, **system, parallel=parallel)
        draw = kalman_sample(key, **system, parallel=parallel)
        assert draw.dtype == jnp.float32
        np.testing.assert_array_equal(draw, expected)  # the same operations, eagerly
        np.testing.assert_allclose(jax.jit(kalman_sample, static_argnames="parallel")(
            key, *system.values(), parallel=parallel), expected, rtol=1e-5, atol=1e-5)
    keyed, with_noise = (inspect.signature(f).parameters
                         for f in (kalman_sample, kalman_sample_with_noise))
    assert list(keyed)[0] == "key" and list(with_noise)[0] == "noise"
    assert list(keyed.values())[1:] == list(with_noise.values())[1:]


# --------------------------------------------------------------------------------------------
# AR(L) -> first-order lift


def random_ar(rng, num_states, latent_dim, nlags):
    Ab = (
        0.4
        * rng.normal(size=(num_states, latent_dim, latent_dim * nlags + 1))
        / np.sqrt(latent_dim * nlags)
    )
    G = rng.normal(size=(num_states, latent_dim, latent_dim))
    Q = G @ np.swapaxes(G, 1, 2) / latent_dim + 0.2 * np.eye(latent_dim)
    return Ab, Q


def test_lifted_dynamics_reproduce_the_ar_recursion_exactly():
    rng = np.random.default_rng(0)
    num_states, latent_dim, nlags, num_frames = 3, 2, 3, 40
    Ab, Q = random_ar(rng, num_states, latent_dim, nlags)
    z = rng.integers(0, num_states, size=num_frames)
    innovations = rng.normal(size=(num_frames, latent_dim))
    x = np.zeros((num_frames, latent_dim))
    x[:nlags] = rng.normal(size=(nlags, latent_dim))
    for t in range(nlags, num_frames):
        lags = x[t - nlags : t].reshape(-1)  # oldest first
        x[t] = (
            Ab[z[t], :, :-1] @ lags + Ab[z[t], :, -1] + np.linalg.cholesky(Q[z[t]]) @ innovations[t]
        )

    A_lifted, b_lifted, Q_lifted = map(np.asarray, ar_to_lds_dynamics(Ab, Q))
    lifted_dim = latent_dim * nlags
    assert A_lifted.shape == (num_states, lifted_dim, lifted_dim)
    shift = slice(0, lifted_dim - latent_dim)
    np.testing.assert_array_equal(Q_lifted[:, shift, :], 0.0)  # exact: no shift noise
    np.testing.assert_array_equal(Q_lifted[:, :, shift], 0.0)
    # The process-noise root the kernels use keeps the shift blocks exactly noiseless.
    np.testing.assert_array_equal(np.asarray(psd_sqrt(Q_lifted))[:, shift, :], 0.0)

    state = x[:nlags].reshape(-1)  # [x_0; ...; x_{L-1}], newest last
    for t in range(nlags, num_frames):
        noise = np.concatenate(
            [np.zeros(lifted_dim - latent_dim), np.linalg.cholesky(Q[z[t]]) @ innovations[t]]
        )
        state = A_lifted[z[t]] @ state + b_lifted[z[t]] + noise
        np.testing.assert_allclose(state, x[t - nlags + 1 : t + 1].reshape(-1), rtol=0, atol=1e-12)


def test_shift_noise_keyword_reproduces_the_reference_lift():
    Ab, Q = random_ar(np.random.default_rng(1), 2, 3, 2)
    _, _, Q_lifted = ar_to_lds_dynamics(Ab, Q, shift_noise=1e-2)
    np.testing.assert_allclose(Q_lifted[:, :3, :3], np.broadcast_to(1e-2 * np.eye(3), (2, 3, 3)))
    np.testing.assert_allclose(Q_lifted[:, 3:, 3:], Q)
    np.testing.assert_array_equal(Q_lifted[:, :3, 3:], 0.0)


def test_emissions_lift_equals_direct_conditioning():
    rng = np.random.default_rng(2)
    latent_dim, nlags, obs_dim, num_frames = 2, 3, 3, 10
    lifted_dim = latent_dim * nlags
    Cd = rng.normal(size=(obs_dim, latent_dim + 1))
    R = rng.uniform(0.3, 2.0, size=(num_frames, obs_dim))
    y = rng.normal(size=(num_frames, obs_dim))
    m0 = rng.normal(size=lifted_dim)
    G = rng.normal(size=(lifted_dim, lifted_dim))
    S0 = G @ G.T + np.eye(lifted_dim)
    C_, d_, R_, y_, m0_, S0_ = map(np.asarray, ar_to_lds_emissions(Cd, R, y, m0, S0, nlags))

    C, d = Cd[:, :-1], Cd[:, -1]
    np.testing.assert_array_equal(C_, np.concatenate([np.zeros((obs_dim, 4)), C], axis=1))
    np.testing.assert_array_equal(d_, d)
    np.testing.assert_array_equal(R_, R[nlags - 1 :])
    np.testing.assert_array_equal(y_, y[nlags - 1 :])
    # Direct construction: y_l = C x_l + d + noise for l < L-1, x_l the l-th block.
    H = np.zeros(((nlags - 1) * obs_dim, lifted_dim))
    for lag in range(nlags - 1):
        H[lag * obs_dim : (lag + 1) * obs_dim, lag * latent_dim : (lag + 1) * latent_dim] = C
    obs_cov = H @ S0 @ H.T + np.diag(R[: nlags - 1].reshape(-1))
    gain = S0 @ H.T @ np.linalg.inv(obs_cov)
    expected_mean = m0 + gain @ (y[: nlags - 1].reshape(-1) - H @ m0 - np.tile(d, nlags - 1))
    np.testing.assert_allclose(m0_, expected_mean, rtol=1e-10)
    np.testing.assert_allclose(S0_, S0 - gain @ H @ S0, rtol=1e-9, atol=1e-12)


def lifted_ar_problem(rng, num_frames, latent_dim, nlags, obs_dim, num_states, dtype=np.float64):
    """An AR(L) keypoint-style problem, lifted; returns the kernel arguments and the parts."""
    Ab, Q = random_ar(rng, num_states, latent_dim, nlags)
    Cd = rng.normal(size=(obs_dim, latent_dim + 1))
    R = rng.uniform(0.3, 1.5, size=(num_frames, obs_dim))
    y = rng.normal(size=(num_frames, obs_dim))
    z = rng.integers(0, num_states, size=num_frames)
    lifted_dim = latent_dim * nlags
    m0, S0 = np.zeros(lifted_dim), 10.0 * np.eye(lifted_dim)
    cast = lambda a: np.asarray(a, dtype)
    A, B, Q_lifted = ar_to_lds_dynamics(cast(Ab), cast(Q))
    C_, d_, R_, y_, m0_, S0_ = ar_to_lds_emissions(
        cast(Cd), cast(R), cast(y), cast(m0), cast(S0), nlags
    )
    hold_newest = np.zeros((lifted_dim, lifted_dim))
    hold_newest[-latent_dim:, -latent_dim:] = np.eye(latent_dim)
    arguments = dict(
        ys=y_,
        mask=np.ones(num_frames - nlags + 1, dtype),
        zs=z[nlags:],
        m0=m0_,
        S0=S0_,
        A=A,
        B=B,
        Q=Q_lifted,
        C=C_,
        D=d_,
        Rs=R_,
        masked_dynamics_params=dict(
            weights=cast(hold_newest),
            bias=np.zeros(lifted_dim, dtype),
            cov=cast(10.0 * np.eye(lifted_dim)),
        ),
        masked_obs_noise=np.full(obs_dim, 10.0, dtype),
    )
    parts = dict(Ab=Ab, Q=Q, Cd=Cd, R=R, y=y, z=z, m0=m0, S0=S0)
    return arguments, parts


def dense_ar_posterior(parts, nlags):
    """Posterior mean and per-frame covariances of x_{0:T-1} in the original AR model."""
    Ab, Q, Cd, R, y, z = (parts[k] for k in ("Ab", "Q", "Cd", "R", "y", "z"))
    num_frames, latent_dim = y.shape[0], Ab.shape[1]
    lifted_dim = latent_dim * nlags
    num_noise = lifted_dim + (num_frames - nlags) * latent_dim
    # x_t = const_t + coef_t ε, ε = [initial lifted state - m0; standard AR innovations].
    coef = [np.eye(num_noise)[lag * latent_dim : (lag + 1) * latent_dim] for lag in range(nlags)]
    const = [parts["m0"][lag * latent_dim : (lag + 1) * latent_dim] for lag in range(nlags)]
    for t in range(nlags, num_frames):
        weights = Ab[z[t], :, :-1]
        lag_blocks = [weights[:, lag * latent_dim : (lag + 1) * latent_dim] for lag in range(nlags)]
        c = sum(w @ coef[t - nlags + lag] for lag, w in enumerate(lag_blocks))
        column = lifted_dim + (t - nlags) * latent_dim
        c[:, column : column + latent_dim] += np.linalg.cholesky(Q[z[t]])
        coef.append(c)
        const.append(
            sum(w @ const[t - nlags + lag] for lag, w in enumerate(lag_blocks)) + Ab[z[t], :, -1]
        )
    coef, const = np.concatenate(coef), np.concatenate(const)
    noise_cov = np.eye(num_noise)
    noise_cov[:lifted_dim, :lifted_dim] = parts["S0"]
    state_cov = coef @ noise_cov @ coef.T
    H = np.kron(np.eye(num_frames), Cd[:, :-1])
    obs_cov = H @ state_cov @ H.T + np.diag(R.reshape(-1))
    gain = state_cov @ H.T @ np.linalg.inv(obs_cov)
    mean = const + gain @ (y.reshape(-1) - H @ const - np.tile(Cd[:, -1], num_frames))
    cov = state_cov - gain @ H @ state_cov
    return mean.reshape(num_frames, latent_dim), marginal_blocks(cov, latent_dim)


@pytest.mark.parametrize("parallel", [False, True])
def test_lifted_kernels_equal_dense_ar_posterior(parallel):
    """The exact lift (noiseless shift blocks) gives the AR model's own posterior, and its
    draws copy the shift blocks exactly from one lifted state to the next."""
    nlags, latent_dim = 3, 2
    arguments, parts = lifted_ar_problem(np.random.default_rng(8), 12, latent_dim, nlags, 3, 2)
    mean, covs = dense_ar_posterior(parts, nlags)
    fn = lambda key, a: (
        kalman_smoother(**a, parallel=parallel),
        kalman_sample(key, **a, parallel=parallel),
    )
    key = jax.random.key(1)
    posterior, x = cheaply_compiled(fn, key, arguments)(key, arguments)
    newest = slice(-latent_dim, None)
    np.testing.assert_allclose(posterior.means[:, newest], mean[nlags - 1 :], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        posterior.covariances[:, newest, newest], covs[nlags - 1 :], rtol=1e-8, atol=1e-10
    )
    # The first L-1 frames are the lag blocks of the first lifted state.
    np.testing.assert_allclose(
        posterior.means[0, :-latent_dim].reshape(nlags - 1, latent_dim),
        mean[: nlags - 1],
        rtol=1e-8,
        atol=1e-10,
    )
    x = np.asarray(x)
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(x[1:, :-latent_dim], x[:-1, latent_dim:], rtol=0, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [False, True])
def test_float32_lifted_ar_long_sequence_is_finite(parallel):
    """T = 30,000 frames (a 17-minute recording at 30 fps), D = 10, L = 3 (n = 30), 20
    observed coordinates, float32: rounding errors do not build up over the sequence."""
    nlags, latent_dim = 3, 10
    arguments, _ = lifted_ar_problem(
        np.random.default_rng(10), 30_000, latent_dim, nlags, 20, 20, dtype=np.float32
    )
    key = jax.random.key(2)
    fn = lambda key, a: kalman_sample(key, **a, parallel=parallel)
    x = cheaply_compiled(fn, key, arguments)(key, arguments)
    assert x.dtype == np.float32
    x = np.asarray(x)
    assert np.all(np.isfinite(x))
    copy_error = np.abs(x[1:, :-latent_dim] - x[:-1, latent_dim:]).max()
    assert copy_error < 1e-4 * max(1.0, np.abs(x).max()), copy_error


# --------------------------------------------------------------------------------------------
# Bad input


def _bad_inputs():
    base = random_system(np.random.default_rng(0), 5, 3, 2, 2)
    cases = {
        "ys": dict(ys=np.zeros(5)),
        "mask": dict(mask=np.ones(4)),
        "zs": dict(zs=np.zeros(5, int)),
        "Rs": dict(Rs=np.ones((4, 2))),
        "A": dict(A=np.zeros((2, 3, 2))),
        "Q": dict(Q=np.zeros((2, 3, 2))),
        "S0": dict(S0=np.eye(2)),
        "m0": dict(m0=np.zeros(2)),
        "B": dict(B=np.zeros((3, 3))),
        "C": dict(C=np.zeros((2, 2))),
        "D": dict(D=np.zeros(3)),
        "masked_obs_noise": dict(masked_obs_noise=np.ones(3)),
        "masked_dynamics_params": dict(masked_dynamics_params=dict(weights=np.eye(3))),
        "jitter": dict(jitter=-1e-3),
    }
    return base, cases


@pytest.mark.parametrize("name", list(_bad_inputs()[1]))
def test_bad_input_names_the_argument(name):
    base, cases = _bad_inputs()
    arguments = {**base, **cases[name]}
    jitter = arguments.pop("jitter", 0.0)
    with pytest.raises(ValueError, match=name):
        kalman_sample(jax.random.key(0), **arguments, jitter=jitter)
    if name != "jitter":
        with pytest.raises(ValueError, match=name):
            kalman_smoother(**arguments)


def test_bad_noise_and_lift_inputs_name_the_argument():
    base, _ = _bad_inputs()
    with pytest.raises(ValueError, match="noise"):
        kalman_sample_with_noise(np.zeros((5, 2, 3)), **base)
    with pytest.raises(ValueError, match="zs"):
        kalman_sample(jax.random.key(0), **{**base, "zs": np.zeros(4)})
    with pytest.raises(ValueError, match="Ab"):
        ar_to_lds_dynamics(np.zeros((2, 3, 8)), np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="Q"):
        ar_to_lds_dynamics(np.zeros((2, 3, 7)), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="shift_noise"):
        ar_to_lds_dynamics(np.zeros((3, 7)), np.eye(3), shift_noise=-1.0)
    Cd, R, y = np.zeros((4, 3)), np.ones((6, 4)), np.zeros((6, 4))
    with pytest.raises(ValueError, match="nlags"):
        ar_to_lds_emissions(Cd, R, y, np.zeros(4), np.eye(4), 0)
    with pytest.raises(ValueError, match="m0"):
        ar_to_lds_emissions(Cd, R, y, np.zeros(3), np.eye(4), 2)
    with pytest.raises(ValueError, match="R"):
        ar_to_lds_emissions(Cd, np.ones((5, 4)), y, np.zeros(4), np.eye(4), 2)
