"""The scheduler on a mesh of 8 (virtual CPU) devices gives the chain it gives on one."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.core import gibbs
from moseq.core.reduce import recording_mesh
from moseq.models import arhmm


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(12, 40, 2)), axis=1) * 0.1
    mask = np.ones((12, 40))
    mask[3, -5:] = 0
    return {"x": jnp.asarray(x), "mask": jnp.asarray(mask)}


def test_eight_devices_are_available():
    assert jax.device_count() >= 8, "conftest sets --xla_force_host_platform_device_count=8"


def test_same_chain_on_one_and_eight_devices(data):
    mesh = jax.make_mesh((8,), ("batch",))
    single = arhmm(2, num_states=5, nlags=2, kappa=10.0)
    sharded = arhmm(2, num_states=5, nlags=2, kappa=10.0, mesh=mesh)
    state_single = single.init(0, data)
    state_sharded = sharded.init(0, data)
    np.testing.assert_array_equal(state_single["z"], state_sharded["z"])
    for sweep in range(3):
        key = jax.random.fold_in(jax.random.key(1), sweep)
        state_single = single.sweep(key, data, state_single)
        state_sharded = sharded.sweep(key, data, state_sharded)
    assert state_sharded["z"].shape == (12, 38)  # padding to 16 recordings is removed
    np.testing.assert_array_equal(state_single["z"], state_sharded["z"])
    for name in ("betas", "pi", "Ab", "Q"):
        np.testing.assert_allclose(state_single[name], state_sharded[name], rtol=1e-8,
                                   atol=1e-10)
    ran_single, _ = single.run(2, data, state_single, 2, progress=False)
    ran_sharded, _ = sharded.run(2, data, state_sharded, 2, progress=False)
    np.testing.assert_array_equal(ran_single["z"], ran_sharded["z"])


def test_sharded_sweep_reduces_across_devices_instead_of_gathering(data):
    mesh = jax.make_mesh((8,), ("batch",))
    model = arhmm(2, num_states=5, nlags=2, kappa=10.0, mesh=mesh)
    state = model.init(0, data)
    padded, padded_state, _ = model._layout(data, state)
    assert len(padded["x"].sharding.device_set) == 8
    sweep = jax.jit(lambda key, data, state: gibbs.sweep(
        model.bound_blocks, key, data, state, mesh=model.mesh))
    with recording_mesh(model.mesh):
        compiled = sweep.lower(jax.random.key(0), padded, padded_state).compile().as_text()
    collectives = [line.split("=", 1)[1].strip() for line in compiled.splitlines()
                   if re.search(r"= .*\b(all-reduce|all-gather|all-to-all)\(", line)]
    assert any("all-reduce(" in line for line in collectives), "global sums are all-reduces"
    # Recordings stay on their devices: no collective moves per-frame arrays (16 x 38
    # frames = 608 rows once padded); only K-sized statistics cross devices.
    frame_sized = [line for line in collectives if re.search(r"\[(608|16|2,38|38)\b", line)]
    assert not frame_sized, frame_sized


def test_mesh_without_batch_axis_is_refused():
    mesh = jax.make_mesh((8,), ("data",))
    with pytest.raises(ValueError, match="'batch'"):
        arhmm(2, num_states=3, mesh=mesh)
