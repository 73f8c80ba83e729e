"""Bookkeeping of syllable labels on the host: relabelling by usage, and padding the model's
`z (N, T - nlags)` to one label per frame (NumPy functions)."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int

from moseq.ops.sequences import get_frequencies


def relabel_by_frequency(
    z: Int[np.ndarray, "N t"], mask: Float[np.ndarray, "N T"], num_states: int,
    runlength: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Relabel syllables so that 0 is the most used, 1 the next, and so on.

    Usage counts the valid frames of `z` (`mask` is aligned with the end of `z`, as in
    `moseq.ops.get_frequencies`), per run (`runlength=True`, keypoint-moseq's default) or per
    frame. Ties keep the lower label first; unused states come last.

    Returns:
        `(z_relabelled, permutation)`: `permutation[new] = old`, so
        `z_relabelled == argsort(permutation)[z]`, and state arrays follow as
        `pi[permutation][:, permutation]`, `betas[permutation]`, `Ab[permutation]`,
        `marginals[..., permutation]`.
    """
    z = np.asarray(z)
    usage = get_frequencies(z, mask, num_states=num_states, runlength=runlength)
    permutation = np.argsort(-usage, kind="stable")
    return np.argsort(permutation)[z], permutation


def pad_to_frames(values, nlags: int) -> np.ndarray:
    """`values (N, T - nlags, ...)` padded at the front to `(N, T, ...)` by repeating entry 0."""
    values = np.asarray(values)
    return np.concatenate([np.repeat(values[:, :1], nlags, axis=1), values], axis=1)
