"""`load_keypoints`: find pose-tracking files, read them, and check them against each other."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py

from moseq.io._deeplabcut import UNIQUE_BODYPARTS, read_deeplabcut
from moseq.io._jabs import read_jabs
from moseq.io._nwb import read_nwb
from moseq.io._recording import Recording, make_recording
from moseq.io._sleap import read_sleap_analysis, read_slp

# Format name -> the file extensions it may have.
FORMATS = {
    "deeplabcut": (".csv", ".h5", ".hdf5"),
    "sleap": (".slp", ".h5", ".hdf5"),
    "jabs": (".h5", ".hdf5"),
    "nwb": (".nwb", ".h5", ".hdf5"),
}
_SUPPORTED = (
    "DeepLabCut .csv/.h5, SLEAP .slp/analysis .h5, JABS pose .h5 (v2+), NWB with ndx-pose"
)


def load_keypoints(
    paths,
    format: str | None = None,
    keypoints: Sequence[str] | None = None,
    individual: str | Sequence[str] | None = None,
    min_frames: int = 1,
) -> dict[str, Recording]:
    """Read pose-tracking files into one `Recording` per animal and file.

    Args:
        paths: a file, a folder (every file in it with an extension of `format`, or of any
            supported format), or a list of files and folders.
        format: "deeplabcut", "sleap", "jabs" or "nwb"; None detects each file's format from
            its extension and, for `.h5`, its contents.
        keypoints: names of the keypoints to keep, in this order; None keeps all of them
            (every recording must then have the same set, reordered like the first).
        individual: for multi-animal files, the individual(s) / track(s) to keep; None keeps
            all but DeepLabCut's "single" (its once-per-video bodyparts).
        min_frames: the fewest frames a recording may have (e.g. nlags + 1 for an AR model).

    Returns:
        `{name: Recording}` in file order; a file with several animals gives one recording
        per animal, named `<file stem>_<individual>`.
    """
    if format is not None and format not in FORMATS:
        raise ValueError(f"`format` must be one of {sorted(FORMATS)} or None; got {format!r}.")
    wanted = [individual] if isinstance(individual, str) else individual
    recordings: dict[str, Recording] = {}
    for path in pose_files(paths, format):
        file_format = format or detect_format(path)
        for recording in _read_file(path, file_format, wanted):
            if recording.name in recordings:
                raise ValueError(
                    f"Two recordings are named {recording.name!r}: from "
                    f"{recordings[recording.name].path} and {recording.path}; rename a file."
                )
            recordings[recording.name] = recording
    recordings = _same_keypoints(recordings, keypoints)
    for recording in recordings.values():
        if recording.num_frames < min_frames:
            raise ValueError(
                f"Recording {recording.name!r} ({recording.path}) has {recording.num_frames} "
                f"frames, fewer than `min_frames`={min_frames}; drop it or lower `min_frames`."
            )
        if not recording.mask.any():
            raise ValueError(
                f"Recording {recording.name!r} ({recording.path}) has no frame with any "
                "keypoint; drop it."
            )
    return recordings


def detect_format(path) -> str:
    """The format of a pose file, from its extension and, for HDF5 files, its layout."""
    path = Path(path)
    suffix = path.suffix.lower()
    by_extension = {".csv": "deeplabcut", ".slp": "sleap", ".nwb": "nwb"}
    if suffix in by_extension:
        return by_extension[suffix]
    if suffix in (".h5", ".hdf5"):
        try:
            with h5py.File(path, "r") as file:
                if "df_with_missing" in file:
                    return "deeplabcut"
                if "tracks" in file and "node_names" in file:
                    return "sleap"
                if "poseest" in file:
                    return "jabs"
                if "nwb_version" in file.attrs:
                    return "nwb"
        except OSError as error:
            raise ValueError(f"Cannot open {path} as HDF5 ({error}).") from error
    raise ValueError(f"Cannot tell the pose format of {path}; supported: {_SUPPORTED}.")


def pose_files(paths, format: str | None = None) -> list[Path]:
    """The files `load_keypoints(paths, format)` reads, in its order: files as given, a
    folder's by their extensions, sorted."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    extensions = FORMATS[format] if format else {ext for exts in FORMATS.values() for ext in exts}
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in extensions)
            if not found:
                raise ValueError(
                    f"Folder {path} holds no file with extension {sorted(extensions)}."
                )
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"`paths` names {path}, which does not exist.")
    if not files:
        raise ValueError("`paths` is empty; name at least one file or folder.")
    return files


def _read_file(path: Path, format: str, wanted: Sequence[str] | None) -> list[Recording]:
    """The recordings of one file, restricted to the `wanted` individuals."""
    if path.suffix.lower() not in FORMATS[format]:
        raise ValueError(
            f"{path} has extension {path.suffix!r}, which {format} files do not have "
            f"({', '.join(FORMATS[format])})."
        )
    if format == "sleap":
        reader = read_slp if path.suffix.lower() == ".slp" else read_sleap_analysis
    else:
        reader = {"deeplabcut": read_deeplabcut, "jabs": read_jabs, "nwb": read_nwb}[format]
    try:
        animals = reader(path)
    except (OSError, KeyError) as error:
        raise ValueError(
            f"Cannot read {path} as {format} ({type(error).__name__}: {error}); "
            f"supported: {_SUPPORTED}."
        ) from error

    individuals = [animal.individual for animal in animals]
    if individuals != [None]:
        keep = wanted or [name for name in individuals if name != UNIQUE_BODYPARTS]
        animals = [animal for animal in animals if animal.individual in keep]
        if not animals:
            raise ValueError(
                f"`individual`={wanted!r} matches none of the individuals of {path}; "
                f"choose from {individuals}."
            )
    return [
        make_recording(
            path.stem if animal.individual is None else f"{path.stem}_{animal.individual}",
            animal.Y, animal.confidence, animal.keypoint_names, animal.fps, path,
        )
        for animal in animals
    ]


def _same_keypoints(recordings: dict[str, Recording], keypoints) -> dict[str, Recording]:
    """Every recording with `keypoints` (default: the first one's), in the same order."""
    if keypoints is not None:
        keypoints = list(keypoints)
        if not keypoints or len(set(keypoints)) != len(keypoints):
            raise ValueError(f"`keypoints` must name distinct keypoints; got {keypoints}.")
        return {name: rec.select(keypoints) for name, rec in recordings.items()}
    first = next(iter(recordings.values()))
    for recording in recordings.values():
        if set(recording.keypoint_names) != set(first.keypoint_names):
            raise ValueError(
                f"Recordings {first.name!r} and {recording.name!r} have different keypoints: "
                f"{list(first.keypoint_names)} and {list(recording.keypoint_names)}. Pass "
                "`keypoints=[...]` (config `data.keypoints`, `moseq init-project --keypoints`) "
                "naming the ones to use, or load them separately."
            )
    return {name: rec.select(first.keypoint_names) for name, rec in recordings.items()}
