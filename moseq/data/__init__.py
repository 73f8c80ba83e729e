"""Data shipped with moseq (see README.md here for sources and licences)."""

from pathlib import Path

HERE = Path(__file__).parent
JABS_CLIP = HERE / "jabs_openfield_mouse" / "sample_pose_est_v2.h5"
"""A real 1800-frame JABS recording of one mouse (12 keypoints, 30 fps; MIT licence)."""
