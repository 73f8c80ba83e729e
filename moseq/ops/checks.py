"""Argument checks shared by the kernels.

Shapes are static, so shape checks run at trace time. Values are checked only when they are
concrete (Python numbers or non-traced arrays); under `jax.jit` a traced hyperparameter is
trusted, because checking it would need a device round trip.
"""

from __future__ import annotations

import jax
import numpy as np


def is_concrete(value) -> bool:
    """True when `value` holds no tracer, so its numbers can be read on the host."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(value))


def check_ndim(name: str, array, ndim: int, shape_doc: str) -> None:
    """Raise if `array` does not have `ndim` axes; `shape_doc` names the expected shape."""
    if np.ndim(array) != ndim:
        raise ValueError(
            f"`{name}` must have shape {shape_doc} ({ndim} axes); got shape {np.shape(array)}."
        )


def check_square(name: str, array) -> None:
    """Raise unless the last two axes of `array` are equal."""
    shape = np.shape(array)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"`{name}` must be square in its last two axes; got shape {shape}.")


def check_same(name_a: str, size_a: int, name_b: str, size_b: int, what: str) -> None:
    """Raise if two sizes that must agree do not."""
    if size_a != size_b:
        raise ValueError(
            f"{what}: `{name_a}` has {size_a} but `{name_b}` has {size_b}; they must match."
        )


def check_positive(name: str, value, allow_zero: bool = False) -> None:
    """Raise if a concrete hyperparameter is negative (zero too unless `allow_zero`) or inf."""
    if not is_concrete(value):
        return
    values = np.asarray(value, dtype=float)
    bad = ~np.isfinite(values) | (values < 0 if allow_zero else values <= 0)
    if np.any(bad):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be finite and {bound}; got {value!r}.")
