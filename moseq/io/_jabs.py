"""JABS pose files (`*_pose_est_v<N>.h5`, version 2 and later), read with h5py.

`poseest/points` holds pixel positions in **(y, x)** order, flipped here to (x, y);
`poseest/confidence` is 0 where a keypoint was not predicted (those points become NaN).
Version 2 is one mouse, `points (T, 12, 2)`. Version 3 and later hold several instances per
frame, `points (T, n_instances, 12, 2)`: from version 4 an instance's long-term identity is
`poseest/instance_embed_id` (1 ... n_identities; 0 and larger values are instances without
one, dropped); version 3 only has tracklets, `poseest/instance_track_id`, each read as its
own animal. JABS files store no frame rate; it is taken to be 30 fps, JABS' own default.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from moseq.io._recording import Animal

JABS_FPS = 30.0
JABS_KEYPOINTS = [
    "NOSE", "LEFT_EAR", "RIGHT_EAR", "BASE_NECK", "LEFT_FRONT_PAW", "RIGHT_FRONT_PAW",
    "CENTER_SPINE", "LEFT_REAR_PAW", "RIGHT_REAR_PAW", "BASE_TAIL", "MID_TAIL", "TIP_TAIL",
]  # fmt: skip


def read_jabs(path: Path) -> list[Animal]:
    """Every animal of a JABS pose `.h5` file."""
    with h5py.File(path, "r") as file:
        pose = file["poseest"]
        points = pose["points"][()].astype(float)[..., ::-1]  # (y, x) -> (x, y)
        confidence = pose["confidence"][()].astype(float)
        if points.shape[-2:] != (len(JABS_KEYPOINTS), 2) or points.ndim not in (3, 4):
            raise ValueError(
                f"{path}: `poseest/points` has shape {points.shape}; JABS files hold "
                "(T, 12, 2) or (T, n_instances, 12, 2)."
            )
        if points.ndim == 3:  # version 2: one mouse
            return [_animal(None, points, confidence)]
        if "instance_embed_id" in pose:
            identity = pose["instance_embed_id"][()]
            num_identities = (
                len(pose["instance_id_center"]) if "instance_id_center" in pose
                else int(identity.max())
            )
            valid = (identity >= 1) & (identity <= num_identities)
        else:
            identity = pose["instance_track_id"][()]
            slots = np.arange(identity.shape[1])
            valid = slots < pose["instance_count"][()][:, None]
    animals = []
    for animal_id in np.unique(identity[valid]):
        frames, slots = np.nonzero(valid & (identity == animal_id))
        animal_points = np.full(points.shape[:1] + points.shape[2:], np.nan)
        animal_confidence = np.zeros(confidence.shape[:1] + confidence.shape[2:])
        animal_points[frames] = points[frames, slots]
        animal_confidence[frames] = confidence[frames, slots]
        animals.append(_animal(f"id{animal_id}", animal_points, animal_confidence))
    return animals


def _animal(individual, points, confidence) -> Animal:
    """`points (T, 12, 2)` in (x, y), NaN where `confidence (T, 12)` is 0."""
    points = np.where(confidence[..., None] > 0, points, np.nan)
    return Animal(individual, points, confidence, JABS_KEYPOINTS, JABS_FPS)
