import jax
import jax.numpy as jnp
import numpy as np

from moseq.utils._interop import jax_io


def test_numpy_inside_jax_outside():
    seen_types = []

    def numpy_fn(x, params, label="name"):
        """Docstring kept."""
        seen_types.extend([type(x), type(params["scale"])])
        return {"scaled": x * params["scale"], "total": np.sum(x), "label": label, "n": 3}

    wrapped = jax_io(numpy_fn)
    out = wrapped(jnp.arange(3.0), {"scale": jnp.asarray(2.0)}, label="kept")

    assert seen_types == [np.ndarray, np.ndarray]
    assert isinstance(out["scaled"], jax.Array) and isinstance(out["total"], jax.Array)
    assert isinstance(out["n"], jax.Array)
    assert out["label"] == "kept"
    np.testing.assert_array_equal(out["scaled"], [0.0, 2.0, 4.0])
    assert wrapped.__name__ == "numpy_fn" and wrapped.__doc__ == "Docstring kept."


def test_non_jax_arguments_pass_through_unchanged():
    received = []
    jax_io(lambda *args: received.extend(args))(np.ones(2), 1.5, "text")
    assert isinstance(received[0], np.ndarray) and received[1:] == [1.5, "text"]
