"""The files of a project: atomic npz writes, `checkpoint.npz`, `model.npz`, and the record
of the outputs a fit or an application wrote (`replace_outputs`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from moseq._atomic import atomic_path, writing
from moseq._version import __version__
from moseq.pipeline._config import Config

CHECKPOINT_NAME = "checkpoint.npz"
MODEL_NAME = "model.npz"
RESULTS_NAME = "results.h5"
CSV_DIR = "csv"
REPORT_DIR = "report"
OUTPUTS_NAME = ".moseq-outputs-{}.json"  # {}: "fit" or "apply"
CHECKPOINT_FORMAT = "moseq-checkpoint"
MODEL_FORMAT = "moseq-model"
OUTPUTS_FORMAT = "moseq-outputs"
FILE_FORMAT_VERSION = 1


def _save_npz(path, arrays: Mapping[str, Any]) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, **{k: np.asarray(v) for k, v in arrays.items()})


def _load_npz(path, expected_format: str, what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as file:
            arrays = {k: file[k] for k in file.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read {what} {os.fspath(path)!r}: {error}.") from None
    if str(arrays.get("format", "")) != expected_format:
        raise ValueError(f"{os.fspath(path)!r} is not a {what} (no format={expected_format!r}).")
    return arrays


def _split(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


@dataclasses.dataclass
class Checkpoint:
    """A fit's progress, as stored in `checkpoint.npz`.

    Layout of the npz: `format` = "moseq-checkpoint", `format_version`, `moseq_version`,
    `sweeps` (sweeps done, both stages counted), `config` (the config as JSON), `config_hash`
    (`Config.chain_hash`), `data_hash` (of the stacked data's rows, `_data_hash`),
    `state/{variable}` (the state after sweep `sweeps - 1`) and `trace/{name}` (per sweep:
    `log_joint`, `stage`).
    """

    sweeps: int
    state: dict[str, np.ndarray]
    trace: dict[str, np.ndarray]
    config: dict
    config_hash: str
    data_hash: str


def save_checkpoint(path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` atomically (temporary file + `os.replace`)."""
    arrays = {"format": CHECKPOINT_FORMAT, "format_version": FILE_FORMAT_VERSION,
              "moseq_version": __version__, "sweeps": checkpoint.sweeps,
              "config": json.dumps(checkpoint.config), "config_hash": checkpoint.config_hash,
              "data_hash": checkpoint.data_hash}
    arrays.update({f"state/{k}": v for k, v in checkpoint.state.items()})
    arrays.update({f"trace/{k}": v for k, v in checkpoint.trace.items()})
    _save_npz(path, arrays)


def load_checkpoint(path) -> Checkpoint:
    arrays = _load_npz(path, CHECKPOINT_FORMAT, "moseq checkpoint")
    return Checkpoint(sweeps=int(arrays["sweeps"]), state=_split(arrays, "state/"),
                      trace=_split(arrays, "trace/"), config=json.loads(str(arrays["config"])),
                      config_hash=str(arrays["config_hash"]), data_hash=str(arrays["data_hash"]))


@dataclasses.dataclass
class FittedModel:
    """What `model.npz` holds: the fitted global parameters (`moseq.models.parameters`), the
    config of the fit, the keypoints it was fitted on, and the project's syllable numbering.

    `syllable_order (K,)`: `syllable_order[syllable] = state`, fixed at the end of the fit
    by frequency in the fitted recordings; `params` stay indexed by state (e.g.
    `params["Ab"][syllable_order[3]]` are syllable 3's dynamics).

    Layout of the npz: `format` = "moseq-model", `format_version`, `moseq_version`, `config`
    (JSON), `keypoint_names`, `fps` (NaN when unknown), `syllable_order`,
    `params/{variable}` (e.g. betas, pi, Ab, Q, Cd, sigmasq).
    """

    params: dict[str, np.ndarray]
    config: Config
    keypoint_names: tuple[str, ...]
    fps: float | None
    syllable_order: np.ndarray


def save_model(path, fitted: FittedModel) -> None:
    arrays = {"format": MODEL_FORMAT, "format_version": FILE_FORMAT_VERSION,
              "moseq_version": __version__, "config": json.dumps(fitted.config.to_dict()),
              "keypoint_names": np.asarray(fitted.keypoint_names, dtype=str),
              "fps": np.nan if fitted.fps is None else fitted.fps,
              "syllable_order": np.asarray(fitted.syllable_order)}
    arrays.update({f"params/{k}": v for k, v in fitted.params.items()})
    _save_npz(path, arrays)


def load_model(path) -> FittedModel:
    """Read `model.npz` (or `PROJECT/model.npz` when given a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_NAME
    if not path.is_file():
        raise FileNotFoundError(f"No fitted model at {path}; run `moseq fit` first.")
    arrays = _load_npz(path, MODEL_FORMAT, "moseq model")
    config = Config.from_dict(json.loads(str(arrays["config"])), base_dir=path.parent.resolve(),
                              source=str(path))
    if "syllable_order" not in arrays:
        raise ValueError(
            f"{path} has no `syllable_order` (it was written by an earlier moseq); run "
            "`moseq fit PROJECT --resume` once to rewrite it (the finished fit is not rerun).")
    fps = float(arrays["fps"])
    return FittedModel(params=_split(arrays, "params/"), config=config,
                       keypoint_names=tuple(str(k) for k in arrays["keypoint_names"]),
                       fps=None if math.isnan(fps) else fps,
                       syllable_order=arrays["syllable_order"])


def _data_hash(batch) -> str:
    """`Checkpoint.data_hash` of a `moseq.io.Batch`: a digest of its rows' digests
    (`row_digests`) and its keypoint names, so that processes that each hold some of the rows
    compute the same hash as one process holding them all."""
    return combine_digests(row_digests(batch), batch.keypoint_names)


def row_digests(batch) -> list[str]:
    """One digest per row of `batch`: its data arrays (their dtypes, shapes and values), its
    recording and its bounds."""
    arrays = {key: np.asarray(batch.data[key]) for key in sorted(batch.data)}
    digests = []
    for row, (key, bounds) in enumerate(zip(batch.keys, np.asarray(batch.bounds), strict=True)):
        digest = hashlib.sha256(json.dumps([str(key), bounds.tolist()]).encode())
        for name, value in arrays.items():
            value = np.ascontiguousarray(value[row])
            digest.update(f"{name}{value.dtype}{value.shape}".encode())
            digest.update(value.tobytes())
        digests.append(digest.hexdigest())
    return digests


def combine_digests(digests, keypoint_names) -> str:
    """The data hash of rows with these digests, in this order."""
    return hashlib.sha256(json.dumps([list(digests), list(keypoint_names)]).encode()).hexdigest()


def _whole_array_hash(batch) -> str:
    """The data hash of checkpoints written before the row digests (one digest of the whole
    arrays); still accepted on resume."""
    digest = hashlib.sha256()
    for key in sorted(batch.data):
        value = np.ascontiguousarray(batch.data[key])
        digest.update(f"{key}{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    digest.update(json.dumps([list(map(str, batch.keys)), np.asarray(batch.bounds).tolist(),
                              list(batch.keypoint_names)]).encode())
    return digest.hexdigest()


def _stamp(path: str) -> list[int]:
    """What tells a file moseq wrote from one changed since: its size and modification time."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def replace_outputs(folder, written, kind: str) -> list[str]:
    """Make `written` (the paths of the files a run of `kind`, "fit" or "apply", just wrote
    in `folder`) the outputs of `folder`, and remove those the previous run of that kind wrote
    that this one did not write again (e.g. the CSV of a recording dropped since).

    The outputs are recorded in `folder/.moseq-outputs-{kind}.json` (`format`
    "moseq-outputs", `files`: {path relative to `folder`: [size, mtime_ns]}). A recorded file
    is removed only if unchanged since moseq wrote it, so a file moseq did not write, one
    edited since or one another kind of run wrote over is never removed; a folder left empty
    by a removal is removed too. Returns the paths removed.
    """
    folder = Path(folder)
    record = folder / OUTPUTS_NAME.format(kind)
    previous: dict = {}
    if record.is_file():
        try:
            stored = json.loads(record.read_text())
            if stored.get("format") == OUTPUTS_FORMAT:
                previous = {str(name): list(stamp) for name, stamp in stored["files"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            previous = {}  # an unreadable record lists nothing to remove
    current = {os.path.relpath(path, folder): _stamp(path) for path in map(os.fspath, written)}
    removed = []
    for name, stamp in sorted(previous.items()):
        path = folder / name
        inside = not os.path.isabs(name) and ".." not in Path(name).parts
        if (name in current or not inside or path.is_symlink() or not path.is_file()
                or _stamp(path) != stamp):
            continue
        with writing(path):
            path.unlink()
            removed.append(str(path))
            parent = path.parent
            if parent != folder and not any(parent.iterdir()):
                parent.rmdir()
    with atomic_path(record) as temporary, open(temporary, "w") as file:
        json.dump({"format": OUTPUTS_FORMAT, "files": current}, file, indent=1)
    return removed
