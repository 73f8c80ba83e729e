"""Calling host-side NumPy code from code that holds JAX arrays (`jax_io`).

Compatibility only: it exists for the reference API (`moseq.utils.utils.jax_io`)."""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np


def _to_numpy(leaf):
    return np.asarray(leaf) if isinstance(leaf, jax.Array) else leaf


def _to_jax(leaf):
    is_numeric = (
        isinstance(leaf, np.ndarray | np.generic | numbers.Number)
        and np.asarray(leaf).dtype.kind in "biufc"
    )
    return jnp.asarray(leaf) if is_numeric else leaf


def jax_io(fn):
    """Wrap a NumPy function so that it takes and returns JAX arrays.

    JAX arrays anywhere in the (pytree) arguments reach `fn` as NumPy arrays; NumPy arrays
    and numbers anywhere in its (pytree) result come back as JAX arrays; other leaves pass
    through unchanged. The data makes a host round trip, so the wrapped function cannot be
    traced by `jax.jit` (use `jax.pure_callback` for that).
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        args, kwargs = jax.tree.map(_to_numpy, (args, kwargs))
        return jax.tree.map(_to_jax, fn(*args, **kwargs))

    return wrapped
