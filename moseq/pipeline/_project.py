"""Setting up a project and its model: `init_project`, `load_data`, `build_model`."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moseq.io import DataWarning
from moseq.models import keypoint_slds
from moseq.pipeline._config import _SECTIONS, CONFIG_NAME, Config, ConfigError


def init_project(project: str | os.PathLike, paths: Sequence[str] | str,
                 anterior: Sequence[str] | str, posterior: Sequence[str] | str, *,
                 overwrite: bool = False, **sections: Mapping[str, Any]) -> Config:
    """Create `project/` and write `project/config.toml` with every option spelled out.

    `paths` (pose-tracking files or folders) are stored as absolute paths (edit the file
    for paths relative to the project folder). `sections` override defaults, e.g.
    `model={"num_states": 20}, fitting={"full_sweeps": 200}`.

    The files are read first. The config is refused (nothing written) if its [data] section
    does not fit them: keypoint names (`anterior`, `posterior`, `data.keypoints`) the files
    lack, a keypoint observed in no recording (see `load_data`). What the [model] section
    would get wrong (e.g. `latent_dim` too large for the keypoints, too few frames above
    `conf_threshold` for the PCA) is a `moseq.io.DataWarning` naming the key to edit before
    `fit`, which refuses it.
    """
    project = Path(project)
    path = project / CONFIG_NAME
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; edit it, or pass overwrite=True "
                              "(`--overwrite`) to replace it.")
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    values = {name: dict(sections.get(name, {})) for name in _SECTIONS}
    unknown = [s for s in sections if s not in _SECTIONS]
    if unknown:
        raise ConfigError(f"init_project got unknown section(s) {unknown}; the sections are "
                          f"{list(_SECTIONS)}.")
    values["data"].update(paths=[str(Path(p).resolve()) for p in paths], anterior=anterior,
                          posterior=posterior)
    config = Config.from_dict(values, base_dir=project.resolve(), source="init_project")
    batch, _ = load_data(config)
    try:
        build_model(config, batch).check_data(batch.data, init=True)
    except ValueError as error:
        warnings.warn(f"The data do not fit this config yet: {error} Edit {path} before "
                      "`moseq fit`.", DataWarning, stacklevel=2)
    project.mkdir(parents=True, exist_ok=True)
    config.save(path)
    return config


def _resolve_config(config_or_project) -> tuple[Config, Path]:
    """(config, project folder) from a Config, a config file or a project folder."""
    if isinstance(config_or_project, Config):
        base = Path(config_or_project.base_dir or Path.cwd())
        return config_or_project, base
    path = Path(config_or_project)
    config = Config.load(path)
    return config, Path(config.base_dir)


def _float_dtype(config: Config):
    return np.float64 if config.fitting.float64 else np.float32


def load_data(config: Config, paths: Sequence[str] | None = None,
              keypoints: Sequence[str] | Mapping[str, str] | None = None,
              rename: Sequence[str] | None = None):
    """Load and stack the recordings a config names: `(batch, recordings)`.

    `paths` replace the config's; `keypoints` replaces `data.keypoints` (the names in the
    files) and `rename` gives the names to use instead (e.g. the fitted model's).

    Raises `ConfigError` naming the key when `data.keypoints`, `data.anterior` or
    `data.posterior` name keypoints the files lack (listing the files' keypoints), and
    `moseq.io.MissingKeypointsError` when the given `keypoints` do.
    """
    import moseq.io

    from_config = keypoints is None
    keypoints = config.data.keypoints if keypoints is None else list(keypoints)
    try:
        recordings = moseq.io.load_keypoints(
            config.data_paths() if paths is None else [os.fspath(p) for p in paths],
            format=config.data.format, keypoints=keypoints, individual=config.data.individual,
            min_frames=config.model.nlags + 1)
    except moseq.io.MissingKeypointsError as error:
        if not from_config:
            raise
        raise ConfigError(
            f"`data.keypoints` names {error.missing}, which recording "
            f"{error.recording.name!r} ({error.recording.path}) lacks; its keypoints are "
            f"{list(error.recording.keypoint_names)}. Fix `data.keypoints` in the config "
            "(`moseq init-project --keypoints`).") from None
    if rename is not None:
        recordings = {name: dataclasses.replace(rec, keypoint_names=tuple(rename))
                      for name, rec in recordings.items()}
    first = next(iter(recordings.values()))
    for key in ("anterior", "posterior"):
        unknown = [n for n in getattr(config.data, key) if n not in first.keypoint_names]
        if unknown:
            raise ConfigError(
                f"`data.{key}` (--{key}) names {unknown}, which are not keypoints of the data "
                f"({first.path}, ...): they are {list(first.keypoint_names)}. Fix "
                f"`data.{key}` in the config (`moseq init-project --{key}`).")
    batch = moseq.io.to_batch(recordings, anterior=config.data.anterior,
                              posterior=config.data.posterior, seg_length=config.data.seg_length,
                              seg_overlap=config.data.seg_overlap)
    dtype = _float_dtype(config)
    data = {k: (np.asarray(v, dtype) if np.issubdtype(np.asarray(v).dtype, np.floating)
                else np.asarray(v)) for k, v in batch.data.items()}
    return batch._replace(data=data), recordings


def _fps(config: Config, recordings) -> float | None:
    if config.data.fps is not None:
        return config.data.fps
    rates = {rec.fps for rec in recordings.values() if rec.fps is not None}
    return rates.pop() if len(rates) == 1 else None


def build_model(config: Config, batch, mesh=None):
    """The keypoint-SLDS of `config` for `batch` (kappa: `model.kappa_full`), on `mesh` (a
    `jax.sharding.Mesh` with a "batch" axis) if given."""
    return keypoint_slds(batch.anterior_idxs, batch.posterior_idxs,
                         keypoint_dim=int(batch.data["Y"].shape[-1]),
                         keypoint_names=batch.keypoint_names, mesh=mesh,
                         chunk_frames=config.fitting.chunk_frames, **config.model_kwargs())


def _metadata(config: Config, keypoint_names, fps, **extra) -> dict:
    """The metadata of a `results.h5` (`moseq.export.save_results_h5`)."""
    return {"fps": fps, "keypoint_names": list(keypoint_names), "nlags": config.model.nlags,
            "config": {s: {k: v for k, v in section.items() if v is not None}
                       for s, section in config.to_dict().items()}, **extra}
