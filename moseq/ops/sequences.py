"""Statistics of state sequences (syllable durations and usages), computed on the host.

The outputs are ragged (one entry per run or per valid frame), so these are NumPy functions.

Every function takes the same two kinds of input:

- an array `stateseqs` of shape `(..., t)` whose rows are independent sequences, with an
  optional `mask` of shape `(..., >=t)`; only the last `t` entries of the mask are used
  (the model's `z` is shorter than the data by the AR order, and aligned with its end);
- a dict or list of arrays of shape `(..., t)` (usually 1-D), one per recording; no mask.

Unlike the reference (its defect A19), a run of one state never continues from one row or
recording into the next, nor across frames that the mask excludes: each row, each
recording, and each stretch of valid frames between masked ones is its own sequence.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _valid_frames_and_run_starts(stateseqs, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """The valid frames of all sequences in order (1-D), and a flag marking where runs begin."""
    if isinstance(stateseqs, Mapping | list | tuple):
        if mask is not None:
            raise ValueError(
                "`mask` applies only when `stateseqs` is an array; drop it, or mask each "
                "sequence of the dict/list yourself before passing it."
            )
        sequences = stateseqs.values() if isinstance(stateseqs, Mapping) else stateseqs
        pieces = [_valid_frames_and_run_starts(np.asarray(seq)) for seq in sequences]
        if not pieces:
            return np.zeros(0, dtype=int), np.zeros(0, dtype=bool)
        states, starts = zip(*pieces, strict=True)
        return np.concatenate(states), np.concatenate(starts)

    stateseqs = np.asarray(stateseqs)
    if stateseqs.ndim == 0:
        raise ValueError(
            "`stateseqs` must have a time axis (shape (..., t)), or be a dict/list of such "
            "arrays; got a scalar."
        )
    num_frames = stateseqs.shape[-1]
    rows = stateseqs.reshape(-1, num_frames)
    if mask is None:
        valid = np.ones(rows.shape, dtype=bool)
    else:
        mask = np.asarray(mask)
        if mask.shape[:-1] != stateseqs.shape[:-1] or mask.shape[-1] < num_frames:
            raise ValueError(
                f"`mask` must have shape (..., >=t) with the leading shape of `stateseqs` "
                f"{stateseqs.shape[:-1]} and at least t={num_frames} frames; "
                f"got shape {mask.shape}."
            )
        valid = mask[..., mask.shape[-1] - num_frames :].reshape(rows.shape) > 0

    previous_valid = np.zeros_like(valid)
    previous_valid[:, 1:] = valid[:, :-1]
    state_changed = np.ones(rows.shape, dtype=bool)
    state_changed[:, 1:] = rows[:, 1:] != rows[:, :-1]
    run_starts = valid & (~previous_valid | state_changed)
    return rows[valid], run_starts[valid]


def concatenate_stateseqs(stateseqs, mask=None) -> np.ndarray:
    """All valid frames of all state sequences, concatenated into one 1-D array.

    Args:
        stateseqs: array `(..., t)`, or a dict/list of arrays (see the module docstring).
        mask: optional `(..., >=t)`, aligned with the end of `stateseqs`; frames where it is 0
            are dropped.

    Returns:
        1-D array of states: rows in order (dict entries in insertion order).
    """
    states, _ = _valid_frames_and_run_starts(stateseqs, mask)
    return states


def get_durations(stateseqs, mask=None) -> np.ndarray:
    """Length of every run of a repeated state, over all sequences, in order of occurrence.

    Runs end at the end of each row or recording and at masked frames (see the module
    docstring). For example `{'a': [1, 1, 2, 2, 2, 3], 'b': [0, 0, 0, 1]}` gives
    `[2, 3, 1, 3, 1]`.

    Args:
        stateseqs: array `(..., t)`, or a dict/list of arrays.
        mask: optional `(..., >=t)`, aligned with the end of `stateseqs`.

    Returns:
        1-D integer array, one entry per run.
    """
    _, run_starts = _valid_frames_and_run_starts(stateseqs, mask)
    start_positions = np.flatnonzero(run_starts)
    return np.diff(np.append(start_positions, run_starts.size))


def get_frequencies(stateseqs, mask=None, num_states=None, runlength=True) -> np.ndarray:
    """Fraction of runs (or of frames) spent in each state, over all sequences.

    For `{'a': [1, 1, 2, 2, 2, 3], 'b': [0, 0, 0, 1]}`, `runlength=True` gives
    `[0.2, 0.4, 0.2, 0.2]` (five runs) and `runlength=False` gives `[0.3, 0.3, 0.3, 0.1]`.

    Args:
        stateseqs: array `(..., t)`, or a dict/list of arrays of non-negative integer states.
        mask: optional `(..., >=t)`, aligned with the end of `stateseqs`.
        num_states: length of the output; default `max(state) + 1`.
        runlength: count each run once (True) or count frames (False).

    Returns:
        `(num_states,)` frequencies summing to 1.
    """
    states, run_starts = _valid_frames_and_run_starts(stateseqs, mask)
    if states.size == 0:
        raise ValueError("`stateseqs` has no valid frames, so no frequencies can be computed.")
    if not np.issubdtype(states.dtype, np.integer) or states.min() < 0:
        raise ValueError("`stateseqs` must hold non-negative integer states.")
    if num_states is None:
        num_states = int(states.max()) + 1
    elif states.max() >= num_states:
        raise ValueError(
            f"`num_states` is {num_states} but `stateseqs` contains state {states.max()}; "
            "pass a larger `num_states` or leave it as None."
        )
    counted = states[run_starts] if runlength else states
    counts = np.bincount(counted, minlength=num_states)
    return counts / counts.sum()
