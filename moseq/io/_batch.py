"""Stack recordings into the models' batched data, and split per-frame results back."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import numpy as np
from jaxtyping import Int

from moseq.io._recording import Recording
from moseq.ops import batching
from moseq.ops.checks import DROP_KEYPOINTS, DataWarning
from moseq.ops.keypoints import interpolate_missing


class Batch(NamedTuple):
    """Recordings stacked for a model, and what is needed to undo the stacking.

    Attributes:
        data: `{"Y": (N, L, K, D), "conf": (N, L, K), "mask": (N, L)}`, all finite. `mask` is
            1 on real frames that have a keypoint, 0 elsewhere; `conf` is 0 on missing
            keypoints and on padding.
        keys: `(N,)` the recording of each row.
        bounds: `(N, 2)` the `(start, end)` frames of each row in its recording.
        keypoint_names: the `K` keypoints, in the order of `data["Y"]`'s third axis.
        anterior_idxs, posterior_idxs: indices into `keypoint_names` of the `anterior` and
            `posterior` keypoints given to `to_batch` (empty when not given).
    """

    data: dict[str, np.ndarray]
    keys: np.ndarray
    bounds: Int[np.ndarray, "N 2"]
    keypoint_names: tuple[str, ...]
    anterior_idxs: Int[np.ndarray, " A"]
    posterior_idxs: Int[np.ndarray, " P"]


def to_batch(
    recordings: Mapping[str, Recording],
    anterior: Sequence[str] = (),
    posterior: Sequence[str] = (),
    seg_length: int | None = None,
    seg_overlap: int = 30,
) -> Batch:
    """Stack recordings into `(N, L, ...)` arrays a model can fit.

    Missing keypoints are filled by linear interpolation over time (a keypoint never seen in
    a recording: by the mean of the others in each frame, with a `DataWarning`) and get
    confidence 0, so `Y` is finite everywhere. A keypoint seen in no recording is refused.
    Rows are padded by repeating their last frame, with mask and confidence 0 there (see
    `moseq.ops.batching.batch`).

    Args:
        recordings: `{name: Recording}` from `load_keypoints`; all with the same keypoints.
        anterior, posterior: keypoint names at the front and back of the body, for the
            heading of egocentric alignment (not the same set).
        seg_length: None for one row per recording, as long as the longest; otherwise rows
            are segments starting every `seg_length` frames, `seg_length + seg_overlap` long.
        seg_overlap: frames shared by consecutive segments of a recording, fewer than
            `seg_length`; weigh statistics by `moseq.ops.segment_ownership(mask, bounds,
            seg_overlap)` to count them once.
    """
    if not recordings:
        raise ValueError("`recordings` is empty; give at least one recording.")
    first = next(iter(recordings.values()))
    for recording in recordings.values():
        if recording.keypoint_names != first.keypoint_names:
            raise ValueError(
                f"Recordings {first.name!r} and {recording.name!r} have different keypoints: "
                f"{list(first.keypoint_names)} and {list(recording.keypoint_names)}; load them "
                "with the same `keypoints=[...]`."
            )
        if not recording.mask.any():
            raise ValueError(f"Recording {recording.name!r} has no frame with any keypoint.")
    anterior_idxs = keypoint_indices("anterior", anterior, first.keypoint_names)
    posterior_idxs = keypoint_indices("posterior", posterior, first.keypoint_names)
    check_heading_keypoints(anterior, posterior)
    check_segments(seg_length, seg_overlap)
    _check_keypoints_seen(recordings)

    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    keys = list(recordings)
    per_recording = {
        "Y": {name: interpolate_missing(rec.Y, np.isnan(rec.Y).any(axis=-1))
              for name, rec in recordings.items()},
        "conf": {name: rec.confidence for name, rec in recordings.items()},
        "mask": {name: rec.mask.astype(float) for name, rec in recordings.items()},
    }
    batched = {
        field: batching.batch(arrays, keys=keys, seg_length=seg_length, seg_overlap=seg_overlap)
        for field, arrays in per_recording.items()
    }
    data = {field: rows for field, (rows, _, _) in batched.items()}
    _, real_frames, (segment_keys, bounds) = batched["mask"]
    data["mask"] = data["mask"] * real_frames
    data["conf"] = data["conf"] * real_frames[..., None]
    data = {field: value.astype(dtype) for field, value in data.items()}
    return Batch(data, segment_keys, bounds, first.keypoint_names, anterior_idxs, posterior_idxs)


def unbatch(values, batch: Batch) -> dict[str, np.ndarray]:
    """Split per-frame results `(N, L, ...)` on the rows of `batch` into one array per recording.

    Where segments overlap, frames come from the earlier segment. Results that cover fewer
    frames than `L` (e.g. states that start after `nlags` frames) must first be padded at the
    front to `L`, e.g. with `moseq.ops.pad_along_axis`.

    Returns:
        `{name: array (T_name, ...)}` in the order of `batch.keys`.
    """
    values = np.asarray(values)
    length = batch.data["mask"].shape[1]
    if values.shape[:2] != (len(batch.keys), length):
        raise ValueError(
            f"`values` must have shape ({len(batch.keys)}, {length}, ...), one entry per row "
            f"and frame of `batch`; got {values.shape}."
        )
    return batching.unbatch(values, batch.keys, batch.bounds)


def keypoint_indices(argument: str, names: Sequence[str], keypoint_names) -> np.ndarray:
    """Indices of `names` in `keypoint_names`; `argument` is the parameter named in errors."""
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in keypoint_names]
    if unknown:
        raise ValueError(
            f"`{argument}` names {unknown}, which are not keypoints of these recordings; "
            f"choose from {list(keypoint_names)}."
        )
    return np.array([list(keypoint_names).index(name) for name in names], dtype=int)


def check_heading_keypoints(anterior: Sequence[str], posterior: Sequence[str],
                            names: tuple[str, str] = ("`anterior`", "`posterior`")) -> None:
    """Refuse `anterior` and `posterior` naming the same keypoints: the heading, from their
    mean posterior to their mean anterior position, is then undefined. `names`: the two
    arguments as the message names them."""
    anterior = [anterior] if isinstance(anterior, str) else list(anterior)
    posterior = [posterior] if isinstance(posterior, str) else list(posterior)
    if anterior and set(anterior) == set(posterior):
        raise ValueError(
            f"{names[0]} and {names[1]} both name {sorted(anterior)}: the heading points from "
            "the posterior keypoints' mean to the anterior ones', so it would be undefined. "
            "Name keypoints at the front of the body (e.g. the nose) as anterior and at the "
            "back (e.g. the tail base) as posterior.")


def check_segments(seg_length: int | None, seg_overlap: int,
                   names: tuple[str, str] = ("`seg_length`", "`seg_overlap`")) -> None:
    """Refuse `seg_length <= seg_overlap`: segments start every `seg_length` frames and are
    `seg_length + seg_overlap` long, so every frame would be fitted at least twice. `names`:
    the two arguments as the message names them."""
    if seg_length is not None and 0 < seg_length <= seg_overlap:
        raise ValueError(
            f"{names[0]} ({seg_length}) must exceed {names[1]} ({seg_overlap}): segments start "
            f"every {names[0]} frames and are {names[0]} + {names[1]} long, so each frame would "
            f"be fitted about {(seg_length + seg_overlap) / seg_length:.0f} times. Raise "
            f"{names[0]} (e.g. to 10000 frames), or lower {names[1]}.")


def _check_keypoints_seen(recordings: Mapping[str, Recording]) -> None:
    """Refuse a keypoint missing in every frame of every recording; warn about one missing in
    every frame of some recordings (there it is filled with the mean of the others)."""
    keypoint_names = next(iter(recordings.values())).keypoint_names
    never_seen = {name: np.isnan(rec.Y).any(axis=-1).all(axis=0)
                  for name, rec in recordings.items()}
    for index, keypoint in enumerate(keypoint_names):
        where = [name for name, unseen in never_seen.items() if unseen[index]]
        if len(where) == len(recordings):
            raise ValueError(
                f"Keypoint {keypoint!r} is missing in every frame of every recording, so "
                f"nothing of it can be fitted; {DROP_KEYPOINTS}.")
        if where:
            listed = ", ".join(map(repr, where[:5])) + (", ..." if len(where) > 5 else "")
            warnings.warn(
                f"Keypoint {keypoint!r} is missing in every frame of {len(where)} of the "
                f"{len(recordings)} recordings ({listed}): there it is filled with the mean of "
                "the other keypoints in each frame, with confidence 0. If it is seldom "
                f"tracked, {DROP_KEYPOINTS}.", DataWarning, stacklevel=3)
