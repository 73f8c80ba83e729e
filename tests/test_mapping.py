import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.utils import _mapping as mapping
from moseq.utils._mapping import (
    get_mixed_map_gpus,
    get_mixed_map_iters,
    mixed_map,
    set_mixed_map_gpus,
    set_mixed_map_iters,
)


@pytest.fixture(autouse=True)
def default_settings():
    yield
    set_mixed_map_iters(1)
    set_mixed_map_gpus(1)


def use(iters, gpus):
    set_mixed_map_iters(iters)
    set_mixed_map_gpus(gpus)


def assert_trees_close(actual, expected):
    """Same structure and values equal to float64 rounding (rtol 1e-12, atol 1e-14).

    `mixed_map` and `jax.vmap` are different programs (serial chunks, `shard_map`, another
    batch size), which XLA may vectorise or fuse differently, so results can differ in the
    last bit (1 ulp = 2.2e-16 was seen); exact equality would test the compiler, not
    `mixed_map`.
    """
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-14),
                 actual, expected)


def regression_step(params, x, scale):
    """A pytree in and out; Cholesky would give NaN if it ever saw zero padding."""
    cholesky = jnp.linalg.cholesky(params["cov"])
    return {
        "whitened": jax.scipy.linalg.solve_triangular(cholesky, x, lower=True) * scale,
        "logdet": 2 * jnp.sum(jnp.log(jnp.diag(cholesky))),
    }


def random_inputs(size, seed=0):
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(size, 3, 3))
    params = {"cov": factors @ np.swapaxes(factors, 1, 2) + np.eye(3)}
    return params, rng.normal(size=(size, 3)), 2.5


@pytest.mark.parametrize("size", [7, 13])
@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
@pytest.mark.parametrize("iters", [1, 2, 3, 5])
def test_equals_vmap_under_jit(iters, gpus, size):
    params, x, scale = random_inputs(size)
    expected = jax.vmap(regression_step, in_axes=(0, 0, None))(params, x, scale)
    use(iters, gpus)
    actual = jax.jit(mixed_map(regression_step, in_axes=(0, 0, None)))(params, x, scale)
    assert_trees_close(actual, expected)


def test_default_in_axes_maps_every_argument_on_axis_0():
    params, x, _ = random_inputs(5)
    scales = np.arange(5.0)
    use(2, 2)
    assert_trees_close(
        mixed_map(regression_step)(params, x, scales), jax.vmap(regression_step)(params, x, scales)
    )


def test_nonzero_in_and_out_axes_and_pytree_prefixes():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 7, 2))  # mapped on axis 1
    b = {"m": rng.normal(size=(3, 7)), "c": rng.normal(size=(3,))}

    def fun(a, b):
        return {"outer": jnp.outer(a, b["m"]), "sum": a.sum() + b["c"].sum()}

    in_axes = (1, {"m": -1, "c": None})
    out_axes = {"outer": 2, "sum": 0}
    expected = jax.vmap(fun, in_axes=in_axes, out_axes=out_axes)(a, b)
    for iters, gpus in [(1, 1), (3, 2), (2, 4)]:
        use(iters, gpus)
        actual = jax.jit(mixed_map(fun, in_axes=in_axes, out_axes=out_axes))(a, b)
        assert actual["outer"].shape == (8, 3, 7)
        assert_trees_close(actual, expected)


def test_int_in_axes_negative_out_axes_and_keyword_arguments():
    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=(3, 2, 9, 4))

    def fun(a, b, c):
        return a * b - c

    expected = jax.jit(jax.vmap(fun, in_axes=1, out_axes=-1))(a, b, c=c[0])
    use(2, 4)
    actual = mixed_map(fun, in_axes=1, out_axes=-1)(a, b, c=c[0])
    assert_trees_close(actual, expected)


def test_function_only_sees_real_entries():
    """Padding repeats real entries (zeros could make e.g. a Cholesky NaN)."""
    seen = []

    def fun(x):
        jax.debug.callback(lambda value: seen.append(np.asarray(value)), x)
        return x * 2

    x = np.arange(1.0, 8.0)
    use(3, 2)
    jax.block_until_ready(jax.jit(mixed_map(fun))(x))
    jax.effects_barrier()
    assert set(np.concatenate([np.ravel(values) for values in seen])) <= set(x)


@pytest.mark.parametrize("gpus", [2, 4, 8])
def test_work_is_spread_over_the_requested_devices(gpus):
    params, x, scale = random_inputs(13)
    use(2, gpus)
    mapped = jax.jit(mixed_map(regression_step, in_axes=(0, 0, None)))
    compiled_text = mapped.lower(params, x, scale).compile().as_text()
    assert re.search(rf"num_partitions={gpus}\b", compiled_text)
    output = mapped(params, x, scale)
    assert len(output["whitened"].sharding.device_set) == gpus


def test_settings_round_trip_and_validation():
    assert (get_mixed_map_iters(), get_mixed_map_gpus()) == (1, 1)
    use(4, 2)
    assert (get_mixed_map_iters(), get_mixed_map_gpus()) == (4, 2)
    for bad in [0, -1, 1.5, True, "2"]:
        with pytest.raises(ValueError, match="iters"):
            set_mixed_map_iters(bad)
        with pytest.raises(ValueError, match="gpus"):
            set_mixed_map_gpus(bad)
    with pytest.raises(ValueError, match="only 8 local device"):
        set_mixed_map_gpus(9)
    assert (mapping.get_mixed_map_iters(), mapping.get_mixed_map_gpus()) == (4, 2)


def test_wrong_number_of_in_axes():
    with pytest.raises(ValueError, match="one entry per argument"):
        mixed_map(lambda a, b: a + b, in_axes=(0,))(np.zeros(3), np.zeros(3))


def test_inconsistent_sizes_are_reported_by_vmap():
    use(2, 2)
    with pytest.raises(ValueError, match="inconsistent sizes"):
        mixed_map(lambda a, b: a + b)(np.zeros(3), np.zeros(4))


def test_bad_axes_are_reported():
    use(2, 2)
    with pytest.raises(ValueError, match="axis 3"):
        mixed_map(lambda a: a, in_axes=3)(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="out_axes"):
        mixed_map(lambda a: (a, a), out_axes=(0, None))
