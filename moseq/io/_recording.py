"""One recording of one animal: keypoint coordinates, confidences and a frame mask."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from jaxtyping import Bool, Float


@dataclasses.dataclass(frozen=True)
class Recording:
    """Keypoints of one animal in one recording, as `load_keypoints` returns them.

    Attributes:
        name: the file stem, plus `_<individual>` for files that hold several animals.
        Y: `(T, K, D)` coordinates in (x, y) or (x, y, z) order; NaN where a keypoint is
            missing.
        confidence: `(T, K)` in [0, 1]; 0 where a keypoint is missing, 1 everywhere when the
            format stores no confidence.
        mask: `(T,)` True on frames with at least one keypoint.
        keypoint_names: the `K` keypoint names, in the order of `Y`'s second axis.
        fps: frames per second, or None when the file does not say.
        path: the file the recording was read from.
    """

    name: str
    Y: Float[np.ndarray, "T K D"]
    confidence: Float[np.ndarray, "T K"]
    mask: Bool[np.ndarray, " T"]
    keypoint_names: tuple[str, ...]
    fps: float | None
    path: str

    @property
    def num_frames(self) -> int:
        return self.Y.shape[0]

    def select(self, keypoints) -> Recording:
        """This recording with only the named keypoints, in the given order (raises
        `MissingKeypointsError` naming those it lacks)."""
        missing = [name for name in keypoints if name not in self.keypoint_names]
        if missing:
            raise MissingKeypointsError(self, missing)
        order = [self.keypoint_names.index(name) for name in keypoints]
        return make_recording(
            self.name, self.Y[:, order], self.confidence[:, order], keypoints, self.fps, self.path
        )


class MissingKeypointsError(ValueError):
    """A recording lacks keypoints that were asked for.

    Attributes:
        recording: the `Recording`; missing: the names it lacks.
    """

    def __init__(self, recording: Recording, missing: list[str]):
        super().__init__(
            f"`keypoints` names {missing}, which recording {recording.name!r} "
            f"({recording.path}) lacks; choose from {list(recording.keypoint_names)}.")
        self.recording, self.missing = recording, missing


def make_recording(name, Y, confidence, keypoint_names, fps, path) -> Recording:
    """Build a `Recording` from raw arrays, making missing points consistent.

    Args:
        Y: `(T, K, D)` coordinates, NaN where missing; infinite or non-numeric values are
            refused, naming `path`.
        confidence: `(T, K)` scores, or None for a format without them (then all ones).
    """
    Y = numbers(Y, "keypoint coordinates", path)
    infinite = np.argwhere(np.isinf(Y))
    if len(infinite):
        frame, keypoint = infinite[0][:2]
        raise ValueError(
            f"{path}: {len(infinite)} keypoint coordinates are infinite (first: frame "
            f"{frame}, keypoint {list(keypoint_names)[keypoint]!r}); a missing point must be "
            "NaN. Repair or re-export the file.")
    missing = np.isnan(Y).any(axis=-1)
    Y = np.where(missing[..., None], np.nan, Y)
    if confidence is None:
        confidence = np.ones(Y.shape[:2])
    confidence = np.clip(np.nan_to_num(numbers(confidence, "confidences", path)), 0.0, 1.0)
    confidence = np.where(missing, 0.0, confidence)
    return Recording(
        name=name,
        Y=Y,
        confidence=confidence,
        mask=~missing.all(axis=1),
        keypoint_names=tuple(str(keypoint) for keypoint in keypoint_names),
        fps=None if fps is None else float(fps),
        path=str(path),
    )


def numbers(values, what: str, path) -> np.ndarray:
    """`values` as floats; text that is no number is refused, naming `what` and `path`."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: its {what} are not numbers ({error}); the file is corrupted "
                         "or not a pose file.") from error


class Animal(NamedTuple):
    """What a format reader returns for one animal of one file, before it is named.

    `individual` is None for single-animal files; `Y`, `confidence` as in `make_recording`.
    """

    individual: str | None
    Y: np.ndarray
    confidence: np.ndarray | None
    keypoint_names: list[str]
    fps: float | None


def as_str(value) -> str:
    """A name stored in HDF5 as bytes or str, as str."""
    return value.decode() if isinstance(value, bytes) else str(value)
