"""Hypothesis strategies for property tests of Gibbs blocks and kernels.

Needs `hypothesis` (a test extra: `pip install hypothesis` or `pip install moseq[test]`);
`import moseq.testing` works without it, this module does not.

Every size argument takes an int, an inclusive (low, high) range or a strategy of ints,
and arrays come back as NumPy float64 (ints for states), so a test reads::

    from hypothesis import given
    from moseq.testing import strategies as mst

    @given(mst.transition_matrices(num_states=(2, 5)), mst.state_sequences(num_states=4))
    def test_counts(pi, seqs): ...

Shrinking works as usual: a failing example shrinks to few states, few frames and simple
values.
"""

from __future__ import annotations

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("moseq.testing.strategies needs hypothesis: `pip install hypothesis` "
                      "(or `pip install moseq[test]`).") from error

import numpy as np

__all__ = [
    "ar_hyperparameters",
    "batched_recordings",
    "hdp_hyperparameters",
    "masks",
    "positive_floats",
    "ragged_recordings",
    "simplex_vectors",
    "spd_matrices",
    "st",
    "state_sequences",
    "sticky_dir_hyperparameters",
    "transition_matrices",
]


def _size(draw, value) -> int:
    """An int, a (low, high) range (inclusive) or a strategy of ints, drawn."""
    if isinstance(value, st.SearchStrategy):
        return int(draw(value))
    if isinstance(value, tuple):
        return int(draw(st.integers(*value)))
    return int(value)


def positive_floats(min_value: float = 1e-2, max_value: float = 1e2) -> st.SearchStrategy:
    """Floats spread evenly in log scale over [min_value, max_value] (> 0)."""
    if not 0 < min_value <= max_value:
        raise ValueError("need 0 < min_value <= max_value.")
    low, high = np.log(min_value), np.log(max_value)
    return st.floats(low, high, allow_nan=False).map(
        lambda u: float(np.clip(np.exp(u), min_value, max_value)))


@st.composite
def hdp_hyperparameters(draw, num_states=(2, 8)):
    """Keyword arguments of `HDPTransitions`: num_states, alpha, kappa, gamma.

    Concentrations stay in [0.5, 100], away from the tiny values whose Dirichlet draws
    underflow to exact zeros.
    """
    return {"num_states": _size(draw, num_states), "alpha": draw(positive_floats(0.5, 100.0)),
            "kappa": draw(st.one_of(st.just(0.0), positive_floats(0.1, 100.0))),
            "gamma": draw(positive_floats(0.5, 100.0))}


@st.composite
def sticky_dir_hyperparameters(draw, num_states=(2, 8)):
    """Keyword arguments of `StickyDirTransitions`: num_states, beta, kappa."""
    return {"num_states": _size(draw, num_states), "beta": draw(positive_floats(0.5, 100.0)),
            "kappa": draw(st.one_of(st.just(0.0), positive_floats(0.1, 100.0)))}


@st.composite
def ar_hyperparameters(draw, num_states=(1, 5), latent_dim=(1, 4),
                       nlags=(1, 3)):
    """Keyword arguments of `ARDynamics.create`: num_states, latent_dim, nlags, nu_0 (above
    latent_dim - 1), S_0_scale and K_0_scale."""
    dim = _size(draw, latent_dim)
    return {"num_states": _size(draw, num_states), "latent_dim": dim,
            "nlags": _size(draw, nlags),
            "nu_0": dim - 1 + draw(positive_floats(0.5, 20.0)),
            "S_0_scale": draw(positive_floats(1e-3, 10.0)),
            "K_0_scale": draw(positive_floats(1e-2, 100.0))}


@st.composite
def simplex_vectors(draw, size=(1, 8), min_value: float = 0.0):
    """Probability vectors (entries >= min_value, summing to one)."""
    n = _size(draw, size)
    if min_value * n > 1:
        raise ValueError(f"`min_value` {min_value} is too large for {n} entries.")
    weights = draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 1.0)))
    weights = weights + 1e-3 if weights.sum() == 0 else weights
    weights = weights / weights.sum()
    return min_value + (1 - min_value * n) * weights


@st.composite
def transition_matrices(draw, num_states=(1, 8), min_probability: float = 0.0,
                        stickiness=None):
    """(K, K) row-stochastic matrices: rows on the simplex, entries >= min_probability.

    `stickiness` (a float or a strategy of floats >= 0) adds that weight to the diagonal
    before the rows are normalised, like the sticky prior.
    """
    k = _size(draw, num_states)
    rows = np.stack([draw(simplex_vectors(k)) for _ in range(k)])
    if stickiness is not None:
        weight = draw(stickiness) if isinstance(stickiness, st.SearchStrategy) else stickiness
        rows = rows + float(weight) * np.eye(k)
        rows = rows / rows.sum(1, keepdims=True)
    return min_probability + (1 - min_probability * k) * rows


@st.composite
def spd_matrices(draw, dim=(1, 5), min_eigenvalue: float = 1e-3,
                 max_condition: float = 1e4):
    """Symmetric positive-definite (d, d) matrices with eigenvalues in [min_eigenvalue,
    min_eigenvalue * max_condition] and random eigenvectors."""
    d = _size(draw, dim)
    raw = draw(hnp.arrays(np.float64, (d, d), elements=st.floats(-1.0, 1.0)))
    basis, _ = np.linalg.qr(raw + 1e-6 * np.eye(d))
    logs = draw(hnp.arrays(np.float64, d, elements=st.floats(0.0, 1.0)))
    eigenvalues = min_eigenvalue * max_condition**logs
    spd = (basis * eigenvalues) @ basis.T
    return (spd + spd.T) / 2


@st.composite
def masks(draw, num_recordings=(1, 4), num_frames=(2, 40),
          min_frames: int = 2, holes: bool = False):
    """(N, T) float 0/1 masks of ragged recordings: recording i has its first T_i >=
    min_frames frames real and the rest padding (at least one recording is full length;
    T is raised to min_frames if drawn smaller).
    `holes=True` also masks random frames inside recordings (missing data)."""
    n, t = _size(draw, num_recordings), max(_size(draw, num_frames), min_frames)
    low = min_frames
    lengths = [draw(st.integers(low, t)) for _ in range(n)]
    lengths[draw(st.integers(0, n - 1))] = t
    mask = (np.arange(t)[None, :] < np.asarray(lengths)[:, None]).astype(np.float64)
    if holes:
        gaps = draw(hnp.arrays(np.bool_, (n, t)))
        mask = np.where(gaps, 0.0, mask)
    return mask


@st.composite
def state_sequences(draw, num_states=(1, 6), num_recordings=(1, 4),
                    num_frames=(2, 40), min_frames: int = 2, holes: bool = False):
    """`{"z": (N, T) int states in [0, K), "mask": (N, T)}` with ragged masks (see `masks`)."""
    k = _size(draw, num_states)
    mask = draw(masks(num_recordings, num_frames, min_frames, holes))
    z = draw(hnp.arrays(np.int64, mask.shape, elements=st.integers(0, k - 1)))
    return {"z": z, "mask": mask}


@st.composite
def ragged_recordings(draw, dim=(1, 4), num_recordings=(1, 4),
                      min_frames: int = 2, max_frames: int = 40, scale: float = 10.0):
    """`{name: (T_i, D) float array}` with lengths in [min_frames, max_frames] and finite
    entries in [-scale, scale]: the raw input of `moseq.ops.batching.batch`."""
    d = _size(draw, dim)
    n = _size(draw, num_recordings)
    recordings = {}
    for i in range(n):
        length = draw(st.integers(min_frames, max_frames))
        recordings[f"recording{i}"] = draw(hnp.arrays(
            np.float64, (length, d), elements=st.floats(-scale, scale, allow_nan=False)))
    return recordings


@st.composite
def batched_recordings(draw, dim=(1, 4), num_recordings=(1, 4),
                       min_frames: int = 2, max_frames: int = 40, scale: float = 10.0):
    """`{"x": (N, T, D), "mask": (N, T)}`: ragged recordings padded to the longest, as the
    scheduler takes them (padding frames repeat each recording's last frame)."""
    recordings = draw(ragged_recordings(dim, num_recordings, min_frames, max_frames, scale))
    arrays = list(recordings.values())
    t = max(a.shape[0] for a in arrays)
    x = np.stack([np.concatenate([a, np.repeat(a[-1:], t - a.shape[0], 0)]) for a in arrays])
    mask = np.stack([(np.arange(t) < a.shape[0]).astype(np.float64) for a in arrays])
    return {"x": x, "mask": mask}
