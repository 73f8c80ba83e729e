"""SLEAP predictions: `.slp` files (read with sleap-io) and analysis `.h5` files (h5py).

An analysis file holds `tracks` `(n_tracks, 2, K, T)`, `node_names` `(K,)`, `track_names`
`(n_tracks,)` and, in newer files, `point_scores` `(n_tracks, K, T)`; SLEAP writes them
transposed for MATLAB, and files exported without that transposition, `tracks`
`(T, K, 2, n_tracks)`, are read too. SLEAP stores no frame rate.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from moseq.io._recording import Animal, as_str


def read_slp(path: Path) -> list[Animal]:
    """Every track of a SLEAP `.slp` predictions file with one video and one skeleton."""
    import sleap_io

    labels = sleap_io.load_slp(str(path))
    if len(labels.videos) != 1 or len(labels.skeletons) != 1:
        raise ValueError(
            f"{path} holds {len(labels.videos)} videos and {len(labels.skeletons)} skeletons; "
            "moseq reads .slp files with one of each (export one file per video)."
        )
    tracked = bool(labels.tracks)
    points = labels.numpy(untracked=not tracked, return_confidence=True)  # (T, n, K, 3)
    if tracked:
        individuals = [track.name for track in labels.tracks]
    elif points.shape[1] == 1:
        individuals = [None]
    else:
        raise ValueError(
            f"{path} has up to {points.shape[1]} untracked animals per frame; run SLEAP's "
            "tracker so that each animal keeps its identity across frames."
        )
    names = labels.skeletons[0].node_names
    return [
        Animal(individual, points[:, i, :, :2], points[:, i, :, 2], names, fps=None)
        for i, individual in enumerate(individuals)
    ]


def read_sleap_analysis(path: Path) -> list[Animal]:
    """Every track of a SLEAP analysis `.h5` file."""
    with h5py.File(path, "r") as file:
        names = [as_str(name) for name in file["node_names"][()]]
        track_names = [as_str(name) for name in file["track_names"][()]]
        tracks = file["tracks"][()]
        scores = file["point_scores"][()] if "point_scores" in file else None
    if tracks.ndim == 4 and tracks.shape[1:3] == (2, len(names)):  # MATLAB order
        tracks = tracks.transpose(3, 0, 2, 1)
        scores = None if scores is None else scores.transpose(2, 0, 1)
    elif tracks.ndim == 4 and tracks.shape[1:3] == (len(names), 2):
        tracks = tracks.transpose(0, 3, 1, 2)
        scores = None if scores is None else scores.transpose(0, 2, 1)
    else:
        raise ValueError(
            f"{path}: `tracks` has shape {tracks.shape}; a SLEAP analysis file with "
            f"{len(names)} nodes has (n_tracks, 2, {len(names)}, T) or (T, {len(names)}, 2, "
            "n_tracks)."
        )
    num_tracks = tracks.shape[1]
    if len(track_names) != num_tracks:  # untracked files store no names
        track_names = [None] if num_tracks == 1 else [f"track{i}" for i in range(num_tracks)]
    return [
        Animal(name, tracks[:, i], None if scores is None else scores[:, i], names, fps=None)
        for i, name in enumerate(track_names)
    ]
