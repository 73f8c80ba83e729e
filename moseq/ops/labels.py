"""Bookkeeping of syllable labels on the host: relabelling by usage, and padding the model's
`z (N, T - nlags)` to one label per frame (NumPy functions)."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int

from moseq.ops.sequences import get_frequencies


def frequency_order(stateseqs, mask=None, num_states: int | None = None,
                    runlength: bool = True) -> np.ndarray:
    """The states ordered by usage, most used first: `order[rank] = state`.

    Usage counts the valid frames of `stateseqs` (an array `(..., t)` or a dict/list of
    arrays, `mask` aligned with its end, as in `moseq.ops.get_frequencies`), per run
    (`runlength=True`, keypoint-moseq's default) or per frame. Ties keep the lower state
    first; unused states come last.
    """
    usage = get_frequencies(stateseqs, mask, num_states=num_states, runlength=runlength)
    return np.argsort(-usage, kind="stable")


def relabel_by_frequency(
    z: Int[np.ndarray, "N t"], mask: Float[np.ndarray, "N T"], num_states: int,
    runlength: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Relabel syllables so that 0 is the most used, 1 the next, and so on
    (`frequency_order`).

    Returns:
        `(z_relabelled, permutation)`: `permutation[new] = old`, so
        `z_relabelled == argsort(permutation)[z]`, and state arrays follow as
        `pi[permutation][:, permutation]`, `betas[permutation]`, `Ab[permutation]`,
        `marginals[..., permutation]`.
    """
    z = np.asarray(z)
    permutation = frequency_order(z, mask, num_states, runlength)
    return np.argsort(permutation)[z], permutation


def pad_to_frames(values, nlags: int) -> np.ndarray:
    """`values (N, T - nlags, ...)` padded at the front to `(N, T, ...)` by repeating entry 0."""
    values = np.asarray(values)
    return np.concatenate([np.repeat(values[:, :1], nlags, axis=1), values], axis=1)
