"""NWB files with ndx-pose pose estimates, read with h5py (no pynwb or ndx-pose needed).

Every group whose `neurodata_type` is `PoseEstimation` (usually under `processing/behavior`)
is one animal; each of its `PoseEstimationSeries` children is one keypoint, with `data`
`(T, 2)` or `(T, 3)` and an optional `confidence` `(T,)`. Keypoints follow the order of the
`nodes` dataset (ndx-pose 0.1) or of the linked `skeleton/nodes` (ndx-pose 0.2 and later)
when those name the series. `data` is scaled by its `conversion` and `offset` attributes, as
NWB defines. The frame rate is the `rate` of `starting_time`, else 1 / the median step of
`timestamps` (which some converters fill with frame indices, giving 1 fps).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from moseq.io._recording import Animal, as_str, numbers


def read_nwb(path: Path) -> list[Animal]:
    """Every `PoseEstimation` of an NWB file, as one animal each."""
    with h5py.File(path, "r") as file:
        containers = _groups_of_type(file, "PoseEstimation")
        if not containers:
            raise ValueError(f"{path} holds no ndx-pose `PoseEstimation`.")
        several = len(containers) > 1
        return [
            _read_pose_estimation(group, group.name.rsplit("/", 1)[-1] if several else None)
            for group in containers
        ]


def _groups_of_type(file: h5py.File, neurodata_type: str) -> list[h5py.Group]:
    found = []

    def visit(name, node):
        if isinstance(node, h5py.Group) and as_str(node.attrs.get("neurodata_type", "")) == (
            neurodata_type
        ):
            found.append(node)

    file.visititems(visit)
    return found


def _read_pose_estimation(group: h5py.Group, individual: str | None) -> Animal:
    series = {
        name: node for name, node in group.items()
        if as_str(node.attrs.get("neurodata_type", "")) == "PoseEstimationSeries"
    }
    nodes = group["nodes"] if "nodes" in group else group.get("skeleton/nodes")
    names = list(series)
    if nodes is not None and {as_str(node) for node in nodes[()]} == set(series):
        names = [as_str(node) for node in nodes[()]]
    coordinates = [_scaled_data(series[name]["data"]) for name in names]
    confidence = None
    if all("confidence" in series[name] for name in names):
        confidence = np.stack([series[name]["confidence"][()] for name in names], axis=1)
    return Animal(individual, np.stack(coordinates, axis=1), confidence, names,
                  _frame_rate(series[names[0]]))


def _scaled_data(data: h5py.Dataset) -> np.ndarray:
    """`(T, D)` in the dataset's unit: stored values times `conversion` plus `offset`."""
    values = numbers(data[()], f"`{data.name}` values", data.file.filename)
    return values * data.attrs.get("conversion", 1.0) + data.attrs.get("offset", 0.0)


def _frame_rate(series: h5py.Group) -> float | None:
    if "starting_time" in series and "rate" in series["starting_time"].attrs:
        return float(series["starting_time"].attrs["rate"])
    if "timestamps" in series and len(series["timestamps"]) > 1:
        return float(1.0 / np.median(np.diff(series["timestamps"][()])))
    return None
