"""Read pose-tracking output into per-recording arrays, and stack them for a model.

    recordings = moseq.io.load_keypoints("videos/", keypoints=["nose", "neck", "tailbase"])
    batch = moseq.io.to_batch(recordings, anterior=["nose"], posterior=["tailbase"])
    # fit a model on batch.data; then, for per-frame results (N, L, ...):
    per_recording = moseq.io.unbatch(results, batch)

Formats, and what reads them:

| `format`     | files                              | read with                       |
|--------------|------------------------------------|---------------------------------|
| "deeplabcut" | predictions `.csv`, `.h5` (2-D, 3-D, multi-animal) | csv + NumPy; h5py |
| "sleap"      | `.slp`; analysis `.h5`             | sleap-io; h5py                  |
| "jabs"       | pose `.h5`, version 2 and later    | h5py                            |
| "nwb"        | `.nwb` with ndx-pose (2-D, 3-D)    | h5py                            |

Every recording has coordinates `Y (T, K, D)` in (x, y[, z]) order with NaN where a keypoint
is missing, confidences `(T, K)` in [0, 1], a frame `mask (T,)`, the keypoint names and the
frame rate when the file stores one (JABS: 30 fps, JABS' default).

Corrupted values (text in a CSV cell, infinite coordinates) are errors naming the file and
where in it. Data that can be fitted but probably should not be as they are give a
`DataWarning` (a keypoint missing in every frame of a recording; at fit time, keypoints
mostly below the model's `conf_threshold`, a PCA on few frames); a keypoint seen in no
recording, or too few confident frames for the PCA, are errors naming the keypoint and the fix.
"""

from moseq.io._batch import (
    Batch,
    check_heading_keypoints,
    check_segments,
    keypoint_indices,
    to_batch,
    unbatch,
)
from moseq.io._load import FORMATS, detect_format, load_keypoints, pose_files
from moseq.io._recording import MissingKeypointsError, Recording
from moseq.ops.checks import DataWarning

__all__ = [
    "FORMATS",
    "Batch",
    "DataWarning",
    "MissingKeypointsError",
    "Recording",
    "check_heading_keypoints",
    "check_segments",
    "detect_format",
    "keypoint_indices",
    "load_keypoints",
    "pose_files",
    "to_batch",
    "unbatch",
]
