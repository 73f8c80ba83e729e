"""Stack ragged recordings into fixed-length, overlapping segments, and stitch them back.

`batch` cuts each recording into segments that start at 0, S, 2S, ... and are S + overlap
frames long (shorter at the end of a recording), pads every segment to S + overlap frames by
repeating its last real frame, and stacks them. Consecutive segments of a recording share
`seg_overlap` frames: the end of one segment is repeated at the start of the next, where it
serves only as context. `segment_ownership` marks the frames each segment owns, so that model
statistics count every frame once, and `unbatch` stitches the owned frames back together.

The host-side functions (`pad_along_axis`, `batch`, `unbatch`, `find_optimal_segment_length`)
take and return NumPy arrays; `segment_ownership` is a JAX function usable under `jax.jit`.
"""

from __future__ import annotations

import numbers
import warnings

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, Shaped


def pad_along_axis(arr, pad_widths, axis=0, value=0) -> np.ndarray:
    """Pad `arr` with the constant `value` on one axis only.

    Args:
        arr: the array to pad.
        pad_widths: `(before, after)`, the number of entries to add at each end.
        axis: the axis to pad (negative values count from the end).
        value: the value of the added entries.
    """
    arr = np.asarray(arr)
    widths = [(0, 0)] * arr.ndim
    widths[axis] = tuple(pad_widths)
    return np.pad(arr, widths, mode="constant", constant_values=value)


def _check_whole(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")


def batch(data_dict, keys=None, seg_length=None, seg_overlap=30):
    """Cut recordings of different lengths into segments and stack them into one array.

    Args:
        data_dict: `{name: array (T_name, ...)}`, time first; the trailing shapes must agree.
        keys: the names to include, in output order; default: all, sorted.
        seg_length: S, the spacing of segment starts. None: one segment per recording, as long
            as the longest recording, and no overlap (`seg_overlap` is ignored).
        seg_overlap: frames shared by consecutive segments of a recording, so segments are
            `(0, S + overlap), (S, 2S + overlap), ...`, clipped at the end of the recording.

    Returns:
        `(data, mask, (keys, bounds))`: `data (N, L, ...)` with `L = S + seg_overlap`, padded
        by repeating each segment's last real frame; `mask (N, L)` float, 1 on real frames and
        0 on padding; `keys (N,)` the recording of each segment; `bounds (N, 2)` the segment's
        `(start, end)` frames in its recording.
    """
    if not data_dict:
        raise ValueError("`data_dict` is empty; give at least one recording.")
    if keys is None:
        keys = sorted(data_dict)
    else:
        keys = list(keys)
        missing = [key for key in keys if key not in data_dict]
        if missing:
            raise ValueError(f"`keys` names recordings missing from `data_dict`: {missing}.")
        if not keys:
            raise ValueError("`keys` is empty; name at least one recording of `data_dict`.")
    recordings = [np.asarray(data_dict[key]) for key in keys]

    for key, recording in zip(keys, recordings, strict=True):
        if recording.ndim == 0 or len(recording) == 0:
            raise ValueError(
                f"`data_dict[{key!r}]` must be an array (T, ...) with at least one frame; "
                f"got shape {recording.shape}."
            )
        if recording.shape[1:] != recordings[0].shape[1:]:
            raise ValueError(
                f"All arrays of `data_dict` must share their shape after the time axis; "
                f"{keys[0]!r} has {recordings[0].shape} but {key!r} has {recording.shape}."
            )

    if seg_length is None:
        seg_length, seg_overlap = max(len(recording) for recording in recordings), 0
    _check_whole("seg_length", seg_length, 1)
    _check_whole("seg_overlap", seg_overlap, 0)
    padded_length = seg_length + seg_overlap

    segments, masks, segment_keys, bounds = [], [], [], []
    for key, recording in zip(keys, recordings, strict=True):
        num_frames = len(recording)
        starts = np.arange(0, num_frames, seg_length)
        frame_indices = starts[:, None] + np.arange(padded_length)
        # Clipping the index to the last frame is what pads by repeating it.
        segments.append(recording[np.minimum(frame_indices, num_frames - 1)])
        masks.append((frame_indices < num_frames).astype(float))
        segment_keys += [key] * len(starts)
        bounds.append(np.stack([starts, np.minimum(starts + padded_length, num_frames)], -1))

    data = np.concatenate(segments)
    mask = np.concatenate(masks)
    return data, mask, (np.array(segment_keys), np.concatenate(bounds))


def segment_ownership(
    mask: Shaped[Array, "N L"], bounds: Int[Array, "N 2"], seg_overlap: int
) -> Shaped[Array, "N L"]:
    """`mask` with the overlap context of every segment that does not start a recording zeroed.

    The first `seg_overlap` frames of a segment with `start > 0` repeat the end of the
    previous segment of its recording, which owns them (it sees their past; see `unbatch`).
    Weighting statistics by the result counts every real frame of every recording once.

    Args:
        mask: `(N, L)` from `batch` (or any finer mask of the same segments).
        bounds: `(N, 2)` segment `(start, end)` frames from `batch`.
        seg_overlap: the overlap given to `batch` (0 if its `seg_length` was None).

    Returns:
        `(N, L)` array of the dtype of `mask`.
    """
    mask = jnp.asarray(mask)
    starts_recording = jnp.asarray(bounds)[:, :1] == 0
    beyond_overlap = jnp.arange(mask.shape[1]) >= seg_overlap
    return jnp.where(starts_recording | beyond_overlap, mask, jnp.zeros_like(mask))


def unbatch(data, keys, bounds) -> dict:
    """Stitch segments from `batch` back into one array per recording.

    Where segments overlap, the frames come from the EARLIER segment (the one that starts
    first), which has left context there; the reference took them from the later segment,
    whose first frames see no past (its defect A4). Frames covered by no segment are 0.

    Args:
        data: `(N, L, ...)` segments.
        keys: `(N,)` recording name of each segment.
        bounds: `(N, 2)` `(start, end)` of each segment in its recording.

    Returns:
        `{name: array (max end, ...)}`, in order of first appearance in `keys`.
    """
    data = np.asarray(data)
    keys = list(np.asarray(keys).tolist())
    bounds = np.asarray(bounds)
    if not len(keys) == len(bounds) == len(data) or bounds.shape[1:] != (2,):
        raise ValueError(
            f"`data` (N, L, ...), `keys` (N,) and `bounds` (N, 2) must describe the same "
            f"segments; got {data.shape}, {len(keys)} keys and bounds {bounds.shape}."
        )
    lengths = bounds[:, 1] - bounds[:, 0]
    if np.any(lengths < 0) or np.any(lengths > data.shape[1]):
        raise ValueError(f"Every segment of `bounds` must span 0 to {data.shape[1]} frames.")

    stitched = {}
    for key in dict.fromkeys(keys):
        rows = [row for row, segment_key in enumerate(keys) if segment_key == key]
        recording = np.zeros((bounds[rows, 1].max(), *data.shape[2:]), dtype=data.dtype)
        # Latest start first, so that earlier segments overwrite the overlaps.
        for row in sorted(rows, key=lambda row: bounds[row, 0], reverse=True):
            start, end = bounds[row]
            recording[start:end] = data[row, : end - start]
        stitched[key] = recording
    return stitched


def find_optimal_segment_length(
    lengths, max_segment_length=10000, max_percent_padding=50, min_fragment_length=4
) -> int:
    """Choose a segment length S for `batch` that keeps padding and short fragments in check.

    The candidates are the distinct recording lengths, capped at `max_segment_length`, largest
    first; S is the first whose padding, sum(-length mod S) / sum(length), is at most
    `max_percent_padding` percent (else `max_segment_length`, with a warning). S is then
    raised until no recording leaves a final fragment (length mod S, when not 0) shorter than
    `min_fragment_length` frames.

    Args:
        lengths: number of frames of each recording.
        max_segment_length: the largest S allowed by the padding search.
        max_percent_padding: padding allowed, in percent of the real frames.
        min_fragment_length: the shortest final fragment allowed; every recording must have at
            least this many frames.
    """
    lengths = np.asarray(lengths, dtype=int)
    if lengths.ndim != 1 or lengths.size == 0:
        raise ValueError(f"`lengths` must be a non-empty list of ints; got {lengths!r}.")
    _check_whole("max_segment_length", max_segment_length, 1)
    _check_whole("min_fragment_length", min_fragment_length, 1)
    if np.any(lengths < min_fragment_length):
        raise ValueError(
            f"Every recording must have at least `min_fragment_length`={min_fragment_length} "
            f"frames; got lengths {sorted(lengths[lengths < min_fragment_length].tolist())}. "
            "Drop the short recordings or lower `min_fragment_length`."
        )

    candidates = np.unique(np.minimum(lengths, max_segment_length))[::-1]
    padding_fraction = [np.sum(-lengths % length) / np.sum(lengths) for length in candidates]
    acceptable = [
        int(length)
        for length, fraction in zip(candidates, padding_fraction, strict=True)
        if fraction * 100 <= max_percent_padding
    ]
    if acceptable:
        seg_length = acceptable[0]
    else:
        seg_length = int(max_segment_length)
        warnings.warn(
            f"No segment length keeps padding under {max_percent_padding}%; using {seg_length}.",
            stacklevel=2,
        )

    def too_short_fragment(seg_length: int) -> bool:
        fragments = lengths % seg_length
        return bool(np.any((fragments > 0) & (fragments < min_fragment_length)))

    while too_short_fragment(seg_length):
        seg_length += 1
    return seg_length
