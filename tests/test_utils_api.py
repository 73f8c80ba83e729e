"""`moseq.utils` offers the reference utility API: same paths, names, parameters, defaults."""

import importlib
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import moseq.utils

REFERENCE_SIGNATURES = {
    "distributions.sample_hmm_stateseq": "(seed, transition_matrix, log_likelihoods, mask)",
    "transitions.count_transitions": "(num_states, stateseqs, mask)",
    "transitions.sample_betas": "(seed, transition_counts, betas, alpha, kappa, gamma)",
    "transitions.sample_pi": "(seed, transition_counts, betas, alpha, kappa)",
    "transitions.sample_hdp_transitions": "(seed, transition_counts, betas, alpha, kappa, gamma)",
    "transitions.resample_hdp_transitions":
        "(seed, z, mask, betas, alpha, kappa, gamma, **kwargs)",
    "transitions.init_hdp_transitions": "(seed, num_states, alpha, kappa, gamma, **kwargs)",
    "transitions.sample_dir_transitions": "(seed, transition_counts, beta, kappa)",
    "transitions.resample_dir_transitions":
        "(seed, num_states, z, mask, beta, kappa, **kwargs)",
    "kalman.kalman_sample": "(seed, ys, mask, zs, m0, S0, A, B, Q, C, D, Rs, "
        "masked_dynamics_params, masked_obs_noise, jitter=0, parallel=True)",
    "kalman.ar_to_lds_emissions": "(Cd, R, y, m0, S0, nlags)",
    "kalman.ar_to_lds_dynamics": "(Ab, Q)",
    "autoregression.get_lags": "(x, nlags)",
    "utils.concatenate_stateseqs": "(stateseqs, mask=None)",
    "utils.get_durations": "(stateseqs, mask=None)",
    "utils.get_frequencies": "(stateseqs, mask=None, num_states=None, runlength=True)",
    "utils.symmetrize": "(A)",
    "utils.psd_solve": "(A, B, diagonal_boost=1e-06)",
    "utils.psd_inv": "(A, diagonal_boost=1e-06)",
    "utils.jax_io": "(fn)",
    "utils.pad_affine": "(x)",
    "utils.fit_pca": "(Y, mask, PCA_fitting_num_frames=1000000, verbose=False, **kwargs)",
    "utils.wrap_angle": "(x)",
    "utils.pad_along_axis": "(arr, pad_widths, axis=0, value=0)",
    "utils.unbatch": "(data, keys, bounds)",
    "utils.batch": "(data_dict, keys=None, seg_length=None, seg_overlap=30)",
    "utils.get_mixed_map_iters": "()",
    "utils.set_mixed_map_iters": "(iters)",
    "utils.get_mixed_map_gpus": "()",
    "utils.set_mixed_map_gpus": "(gpus)",
    "utils.mixed_map": "(fun, in_axes=None, out_axes=None)",
}


def plain_signature(function) -> str:
    """The signature with parameter names, kinds and defaults, without annotations.

    Extra trailing parameters that have defaults (moseq's additions) are left out: code
    written against the reference never passes them.
    """
    parameters = [
        parameter.replace(annotation=inspect.Parameter.empty)
        for parameter in inspect.signature(function).parameters.values()
    ]
    while parameters and parameters[-1].default is not inspect.Parameter.empty and (
        parameters[-1].name not in REFERENCE_PARAMETER_NAMES
    ):
        parameters.pop()
    return str(inspect.Signature(parameters))


REFERENCE_PARAMETER_NAMES = {
    name.split("=")[0].strip(" *()")
    for signature in REFERENCE_SIGNATURES.values()
    for name in signature.split(",")
}


#: Functions that exist only for the reference API: implemented in `moseq.utils`, not ops.
COMPATIBILITY_ONLY = {
    "jax_io", "mixed_map", "get_mixed_map_iters", "set_mixed_map_iters", "get_mixed_map_gpus",
    "set_mixed_map_gpus",
}


@pytest.mark.parametrize("path, signature", sorted(REFERENCE_SIGNATURES.items()))
def test_reference_function_exists_with_the_same_signature(path, signature):
    module_name, function_name = path.rsplit(".", 1)
    function = getattr(importlib.import_module(f"moseq.utils.{module_name}"), function_name)
    assert plain_signature(function) == signature
    if function_name in COMPATIBILITY_ONLY:
        assert function.__module__.startswith("moseq.utils."), "compatibility-only: in utils"
    else:
        assert function.__module__.startswith("moseq.ops."), "implementations live in moseq.ops"
    if module_name == "utils":
        assert getattr(moseq.utils, function_name) is function


def test_seed_is_the_ops_kernels_key_positionally_or_by_keyword():
    from moseq.ops import transitions

    counts, betas = jnp.array([[3, 1], [0, 4]]), jnp.array([0.6, 0.4])
    key = jax.random.key(3)
    expected = transitions.sample_betas(key, counts, betas, 2.0, 1.0, 3.0)
    reference = moseq.utils.transitions.sample_betas
    for draw in (reference(key, counts, betas, 2.0, 1.0, 3.0),
                 reference(seed=key, transition_counts=counts, betas=betas, alpha=2.0,
                           kappa=1.0, gamma=3.0)):
        np.testing.assert_array_equal(draw, expected)  # the same program, run again
    np.testing.assert_array_equal(jax.jit(reference)(key, counts, betas, 2.0, 1.0, 3.0),
                                  jax.jit(transitions.sample_betas)(key, counts, betas, 2.0,
                                                                    1.0, 3.0))
    assert reference.__doc__ == transitions.sample_betas.__doc__
    assert "seed" not in inspect.signature(transitions.sample_betas).parameters


def test_array_kernels_jit_and_vmap():
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(4, 3, 3))
    spd = factors @ np.swapaxes(factors, -1, -2) + 3 * np.eye(3)
    vector = rng.normal(size=(4, 3))
    np.testing.assert_allclose(
        jax.jit(jax.vmap(moseq.utils.psd_solve))(spd, vector),
        np.linalg.solve(spd, vector[..., None])[..., 0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(moseq.utils.psd_inv))(spd), np.linalg.inv(spd), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(jax.jit(moseq.utils.symmetrize)(factors),
                               (factors + np.swapaxes(factors, -1, -2)) / 2)
    np.testing.assert_array_equal(jax.jit(moseq.utils.pad_affine)(vector)[..., -1], 1.0)
    angles = jnp.array([-7.0, -np.pi, 0.5, np.pi, 10.0])
    wrapped = jax.jit(jax.vmap(moseq.utils.wrap_angle))(angles)
    assert np.all((wrapped >= -np.pi) & (wrapped < np.pi))
    np.testing.assert_allclose(np.cos(wrapped), np.cos(angles), atol=1e-12)


def test_psd_solve_agrees_with_numpy_on_random_spd_matrices():
    rng = np.random.default_rng(1)
    for size in (1, 2, 5, 12):
        factor = rng.normal(size=(size, size))
        spd = factor @ factor.T + 0.5 * np.eye(size)
        rhs = rng.normal(size=(size, 3))
        np.testing.assert_allclose(
            moseq.utils.psd_solve(spd, rhs, diagonal_boost=0.0), np.linalg.solve(spd, rhs),
            rtol=1e-8, atol=1e-10)
        inverse = np.asarray(moseq.utils.psd_inv(spd, diagonal_boost=0.0))
        np.testing.assert_allclose(inverse, np.linalg.inv(spd), rtol=1e-8, atol=1e-10)
        np.testing.assert_array_equal(inverse, inverse.T)


def test_get_lags_orders_oldest_first():
    x = np.arange(12.0).reshape(6, 2)
    lags = np.asarray(jax.jit(moseq.utils.autoregression.get_lags, static_argnums=1)(x, 2))
    assert lags.shape == (4, 4)
    np.testing.assert_array_equal(lags[0], np.concatenate([x[0], x[1]]))
    np.testing.assert_array_equal(lags[-1], np.concatenate([x[3], x[4]]))
    with pytest.raises(ValueError, match="`nlags`"):
        moseq.utils.autoregression.get_lags(x, 0)
    with pytest.raises(ValueError, match="`x`"):
        moseq.utils.autoregression.get_lags(x, 7)
