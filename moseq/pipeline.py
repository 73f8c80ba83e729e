"""The user pipeline: a project folder with a config file, a checkpointed two-stage fit,
applying a fitted model to new recordings, and the exported results.

    moseq.pipeline.init_project("my_project", ["videos/"], anterior=["nose"],
                                posterior=["tailbase"])        # writes my_project/config.toml
    # ... edit my_project/config.toml ...
    moseq.pipeline.fit("my_project")                # or `moseq fit my_project` in a shell
    moseq.pipeline.fit("my_project", resume=True)   # after a crash: continues the same chain
    moseq.pipeline.apply("my_project", ["new_videos/"], output="new_results")

A project folder holds:

    config.toml      every hyperparameter and preprocessing choice ([data], [model],
                     [fitting], [apply]), with comments; see `Config`
    checkpoint.npz   the latest checkpoint of the fit (see `save_checkpoint`), written
                     atomically every `fitting.checkpoint_every` sweeps and at the end of
                     each stage
    model.npz        the fitted parameters and the config they were fitted with (see
                     `save_model`), what `apply` reads
    results.h5       per-recording, per-frame results (layout: `moseq.export`)
    csv/             the same results, one CSV per recording
    report/          figures and report.md / report.html (`moseq.viz.write_report`)

The fit is `moseq.models.fit_staged`'s chain exactly: `init` with `fold_in(key, 0)`, the
AR-only stage (kappa `model.kappa_ar`, observation-side blocks frozen) with `fold_in(key, 1)`
for sweeps 0 .. ar_sweeps - 1, then the full model (kappa `model.kappa_full`) with
`fold_in(key, 2)` for sweeps ar_sweeps .. ar_sweeps + full_sweeps - 1, where key is
`fitting.seed`. Sweep s uses `fold_in(stage_key, s)` whatever the chunking, so a fit resumed
from a checkpoint is bit for bit the fit that was never interrupted.

Precision is the config's choice (`fitting.float64`), not the process's: the fit and the
application run inside `jax.enable_x64(fitting.float64)` with the data cast to that float.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAME = "config.toml"
CHECKPOINT_NAME = "checkpoint.npz"
MODEL_NAME = "model.npz"
RESULTS_NAME = "results.h5"
CSV_DIR = "csv"
REPORT_DIR = "report"
CHECKPOINT_FORMAT = "moseq-checkpoint"
MODEL_FORMAT = "moseq-model"
FILE_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

def _option(default, kind: str, help: str, *, optional: bool = False, required: bool = False):
    """A config field. kind: int, float, bool, str, strs (list of strings; a single string is
    accepted), choice:a|b. optional: None allowed (written as a commented-out line).
    required: must be in the file (no default)."""
    metadata = {"kind": kind, "help": help, "optional": optional, "required": required}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class DataConfig:
    """[data]: which files to read and how to stack them."""

    paths: list = _option(
        [], "strs", "Pose-tracking files or folders (relative paths are relative to this "
        "file's folder).", required=True)
    anterior: list = _option(
        [], "strs", "Keypoints at the front of the body (heading points from posterior to "
        "anterior).", required=True)
    posterior: list = _option([], "strs", "Keypoints at the back of the body.", required=True)
    format: str | None = _option(
        None, "choice:deeplabcut|sleap|jabs|nwb", "File format; unset: detected from each "
        "file.", optional=True)
    keypoints: list | None = _option(
        None, "strs", "Keypoints to use, in this order; unset: all of them.", optional=True)
    individual: list | None = _option(
        None, "strs", "Multi-animal files: the individuals / tracks to keep; unset: all.",
        optional=True)
    fps: float | None = _option(
        None, "float", "Frames per second (for durations in seconds); unset: from the files, "
        "when they say.", optional=True)
    seg_length: int | None = _option(
        None, "int", "Cut recordings into rows of this many frames (bounds memory per row); "
        "unset: one row per recording.", optional=True)
    seg_overlap: int = _option(30, "int", "Frames shared by consecutive segments.")


@dataclasses.dataclass
class ModelConfig:
    """[model]: the keypoint-SLDS hyperparameters (`moseq.models.keypoint_slds`)."""

    latent_dim: int = _option(10, "int", "Dimension of the pose latent x (PCA components).")
    num_states: int = _option(100, "int", "Maximum number of syllables (weak-limit HDP).")
    nlags: int = _option(3, "int", "Autoregressive order.")
    kappa_ar: float = _option(1e6, "float", "Stickiness in the AR-only stage.")
    kappa_full: float = _option(
        1e4, "float", "Stickiness in the full model (larger: longer syllables; calibrate with "
        "moseq.models.kappa_scan to a median duration of about 0.3-0.4 s).")
    alpha: float = _option(5.7, "float", "HDP concentration of each transition row.")
    gamma: float = _option(1e3, "float", "HDP concentration of the global syllable weights.")
    transitions: str = _option(
        "hdp", "choice:hdp|sticky_dir", "Transition prior: sticky HDP, or sticky Dirichlet "
        "(concentration `beta`).")
    beta: float = _option(1.0, "float", "Concentration of the sticky-Dirichlet prior.")
    S_0_scale: float = _option(0.01, "float", "Scale of the AR noise prior.")
    K_0_scale: float = _option(10.0, "float", "Scale of the AR matrix prior.")
    sigmasq_loc: float = _option(0.5, "float", "Variance of the centroid's random walk.")
    nu_s: float = _option(5.0, "float", "Degrees of freedom of the keypoint noise scales.")
    slope: float = _option(-0.5, "float", "Confidence error model: slope of log noise on "
                           "log confidence.")
    intercept: float = _option(0.25, "float", "Confidence error model: intercept.")
    nu_sigma: float = _option(1e5, "float", "Degrees of freedom of the sigmasq prior.")
    sigmasq_0: float = _option(0.1, "float", "Scale of the sigmasq prior.")
    conf_threshold: float = _option(
        0.5, "float", "Frames whose keypoints are all above this confidence feed the PCA.")
    whiten: bool = _option(True, "bool", "Whiten the PCA latents.")
    fix_heading: bool = _option(False, "bool", "Keep the heading at its initial value.")
    resample_sigmasq: bool = _option(
        False, "bool", "Resample sigmasq (keypoint-MoSeq keeps it at 1).")
    jitter: float = _option(1e-3, "float", "Diagonal jitter of the Kalman sampler.")


@dataclasses.dataclass
class FittingConfig:
    """[fitting]: the sampler's schedule."""

    seed: int = _option(0, "int", "Random seed: the same seed and config, the same chain.")
    ar_sweeps: int = _option(50, "int", "Sweeps of the AR-only stage.")
    full_sweeps: int = _option(
        500, "int", "Sweeps of the full model (may be raised to extend a fit with --resume).")
    chunk_size: int = _option(10, "int", "Sweeps between progress reports and checkpoint "
                              "checks.")
    checkpoint_every: int = _option(
        25, "int", "Write checkpoint.npz every this many sweeps (0: only at the end of each "
        "stage).")
    float64: bool = _option(
        False, "bool", "Fit in float64 (slower, exact comparisons); false: float32.")


@dataclasses.dataclass
class ApplyConfig:
    """[apply]: applying the fitted model to recordings (`moseq apply`)."""

    num_sweeps: int = _option(20, "int", "Sweeps of the per-recording variables.")
    marginal_sweeps: int = _option(
        1, "int", "Average syllable probabilities over this many final sweeps.")
    seed: int = _option(0, "int", "Random seed of the application.")


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "fitting": FittingConfig,
             "apply": ApplyConfig}

# Keys that may change between a checkpoint and --resume: they do not change the chain.
RESUMABLE_KEYS = ("data.fps", "fitting.full_sweeps", "fitting.checkpoint_every",
                  "apply.num_sweeps", "apply.marginal_sweeps", "apply.seed")


class ConfigError(ValueError):
    """A config file or value is wrong; the message names the key and the fix."""


@dataclasses.dataclass
class Config:
    """Every choice of a fit, in four sections; `Config.load(path)` / `config.save(path)`
    read and write the TOML file (`to_toml` writes every option with a comment).

    Relative `data.paths` are relative to `base_dir` (the config file's folder when loaded).
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    fitting: FittingConfig = dataclasses.field(default_factory=FittingConfig)
    apply: ApplyConfig = dataclasses.field(default_factory=ApplyConfig)
    base_dir: str | None = dataclasses.field(default=None, compare=False)

    # ---- dict / TOML ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """`{section: {key: value}}`, every key (None for unset optional keys)."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in _SECTIONS}

    @classmethod
    def from_dict(cls, values: Mapping, base_dir: str | os.PathLike | None = None,
                  source: str = "the config") -> Config:
        """Build and validate a config; unknown sections or keys, missing required keys and
        values of the wrong type raise `ConfigError` naming them."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source} must be a table of sections {list(_SECTIONS)}.")
        unknown = [s for s in values if s not in _SECTIONS]
        if unknown:
            raise ConfigError(f"{source} has unknown section(s) {unknown}"
                              f"{_did_you_mean(unknown[0], _SECTIONS)}; the sections are "
                              f"{list(_SECTIONS)}.")
        sections, missing = {}, []
        for name, section_cls in _SECTIONS.items():
            given = values.get(name, {})
            if not isinstance(given, Mapping):
                raise ConfigError(f"{source}: [{name}] must be a table of keys.")
            fields = {f.name: f for f in dataclasses.fields(section_cls)}
            unknown = [k for k in given if k not in fields]
            if unknown:
                raise ConfigError(
                    f"{source}: unknown key(s) {[f'{name}.{k}' for k in unknown]}"
                    f"{_did_you_mean(unknown[0], fields)}; the keys of [{name}] are "
                    f"{list(fields)}.")
            kwargs = {}
            for key, field in fields.items():
                if key in given:
                    kwargs[key] = _coerce(f"{name}.{key}", given[key], field.metadata)
                elif field.metadata["required"]:
                    missing.append(f"{name}.{key}")
            sections[name] = section_cls(**kwargs)
        if missing:
            raise ConfigError(f"{source} lacks the required key(s) {missing}; add them (see "
                              "`moseq init-project --help` for a complete config).")
        config = cls(**sections, base_dir=None if base_dir is None else os.fspath(base_dir))
        config.validate(source)
        return config

    def validate(self, source: str = "the config") -> None:
        """Check values against each other (raises `ConfigError`)."""
        def positive(key, value, allow_zero=False):
            if value < 0 or (value == 0 and not allow_zero) or value != value:
                raise ConfigError(f"{source}: `{key}` must be {'>= 0' if allow_zero else '> 0'}"
                                  f"; got {value}.")
        if not self.data.paths:
            raise ConfigError(f"{source}: `data.paths` is empty; name the pose-tracking files "
                              "or folders.")
        for key in ("anterior", "posterior"):
            if not getattr(self.data, key):
                raise ConfigError(f"{source}: `data.{key}` is empty; name at least one "
                                  "keypoint.")
        for key in ("latent_dim", "num_states", "nlags"):
            positive(f"model.{key}", getattr(self.model, key))
        for key in ("kappa_ar", "kappa_full", "alpha", "gamma", "beta", "S_0_scale",
                    "K_0_scale", "sigmasq_loc", "nu_s", "nu_sigma", "sigmasq_0"):
            positive(f"model.{key}", getattr(self.model, key))
        positive("model.jitter", self.model.jitter, allow_zero=True)
        for key in ("seed", "ar_sweeps", "full_sweeps", "checkpoint_every"):
            positive(f"fitting.{key}", getattr(self.fitting, key), allow_zero=True)
        positive("fitting.chunk_size", self.fitting.chunk_size)
        for key in ("num_sweeps", "marginal_sweeps", "seed"):
            positive(f"apply.{key}", getattr(self.apply, key), allow_zero=True)
        if self.apply.marginal_sweeps > max(self.apply.num_sweeps, 1):
            raise ConfigError(f"{source}: `apply.marginal_sweeps` ({self.apply.marginal_sweeps})"
                              f" must be at most `apply.num_sweeps` ({self.apply.num_sweeps}).")
        if self.data.fps is not None:
            positive("data.fps", self.data.fps)
        if self.data.seg_length is not None:
            positive("data.seg_length", self.data.seg_length)
        positive("data.seg_overlap", self.data.seg_overlap, allow_zero=True)

    def to_toml(self) -> str:
        """The config as TOML, every key written with its help as a comment (unset optional
        keys as commented-out lines)."""
        lines = ["# moseq project configuration: every hyperparameter and preprocessing choice.",
                 "# Edit, then run `moseq fit <project folder>`. Unset options are commented out.",
                 ""]
        for name, section_cls in _SECTIONS.items():
            lines += [f"# {section_cls.__doc__.strip()}", f"[{name}]"]
            section = getattr(self, name)
            for field in dataclasses.fields(section_cls):
                meta = field.metadata
                extra = " Required." if meta["required"] else ""
                kind = meta["kind"]
                if kind.startswith("choice:"):
                    extra += f" One of: {', '.join(kind[7:].split('|'))}."
                lines += textwrap.wrap(f"{meta['help']}{extra}", width=88,
                                       initial_indent="# ", subsequent_indent="# ")
                value = getattr(section, field.name)
                if value is None:
                    lines.append(f"# {field.name} = {_toml_example(kind)}")
                else:
                    lines.append(f"{field.name} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)

    @classmethod
    def from_toml(cls, text: str, base_dir=None, source: str = "the config") -> Config:
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{source} is not valid TOML: {error}.") from None
        return cls.from_dict(values, base_dir=base_dir, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        """Read a config file (or `PROJECT/config.toml` when given a folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(f"No config file at {path}; create one with `moseq init-project`.")
        return cls.from_toml(path.read_text(), base_dir=path.parent.resolve(), source=str(path))

    def save(self, path: str | os.PathLike) -> None:
        """Write `to_toml()` to `path` (atomically)."""
        _atomic_write(path, lambda f: f.write(self.to_toml().encode()))

    # ---- derived --------------------------------------------------------------------------
    def data_paths(self) -> list[str]:
        """`data.paths`, relative ones resolved against `base_dir`."""
        base = Path(self.base_dir) if self.base_dir else Path.cwd()
        return [str(p if Path(p).is_absolute() else base / p) for p in self.data.paths]

    def model_kwargs(self) -> dict[str, Any]:
        """Keywords of `moseq.models.keypoint_slds` (kappa: `kappa_full`)."""
        kwargs = dataclasses.asdict(self.model)
        kwargs["kappa"] = kwargs.pop("kappa_full")
        kwargs.pop("kappa_ar")
        return kwargs

    def chain_hash(self) -> str:
        """Hash of every key that changes the fitted chain (all but `RESUMABLE_KEYS`)."""
        return _hash_json(_flat(self.to_dict(), skip=RESUMABLE_KEYS))


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(key: str, value, meta: Mapping):
    kind = meta["kind"]
    if value is None:
        if meta["optional"]:
            return None
        raise ConfigError(f"`{key}` must be set.")
    def wrong(expected):
        return ConfigError(f"`{key}` must be {expected}; got {value!r}.")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise wrong("an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if kind == "strs":
        if isinstance(value, str | os.PathLike):
            value = [value]
        if not isinstance(value, list | tuple) or not all(
                isinstance(v, str | os.PathLike) for v in value):
            raise wrong("a string or a list of strings")
        return [os.fspath(v) for v in value]
    if kind.startswith("choice:"):
        choices = kind[7:].split("|")
        if value not in choices:
            raise ConfigError(f"`{key}` must be one of {choices}; got {value!r}"
                              f"{_did_you_mean(str(value), choices)}.")
        return value
    if not isinstance(value, str):
        raise wrong("a string")
    return value


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ("nan" if value != value else "inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def _toml_example(kind: str) -> str:
    return {"int": "1000", "float": "30.0", "strs": '["name"]', "bool": "false"}.get(
        kind, json.dumps(kind[7:].split("|")[0]) if kind.startswith("choice:") else '""')


def _flat(values: Mapping, skip: Sequence[str] = ()) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, section in values.items() for k, v in section.items()
            if f"{s}.{k}" not in skip}


def _hash_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def init_project(project: str | os.PathLike, paths: Sequence[str] | str,
                 anterior: Sequence[str] | str, posterior: Sequence[str] | str, *,
                 overwrite: bool = False, **sections: Mapping[str, Any]) -> Config:
    """Create `project/` and write `project/config.toml` with every option spelled out.

    `paths` (pose-tracking files or folders) are stored as absolute paths (edit the file
    for paths relative to the project folder). `sections` override defaults, e.g.
    `model={"num_states": 20}, fitting={"full_sweeps": 200}`.
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


# --------------------------------------------------------------------------------------------
# Files: atomic writes, checkpoints, fitted models
# --------------------------------------------------------------------------------------------

def _atomic_write(path: str | os.PathLike, write: Callable) -> None:
    """Write through `write(file)` to a temporary file beside `path`, fsync, then move it into
    place: a crash leaves either the old file or the new one, never half of one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".moseq-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _save_npz(path, arrays: Mapping[str, Any]) -> None:
    _atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))


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
    (`Config.chain_hash`), `data_hash` (of the stacked data arrays), `state/{variable}` (the
    state after sweep `sweeps - 1`) and `trace/{name}` (per sweep: `log_joint`, `stage`).
    """

    sweeps: int
    state: dict[str, np.ndarray]
    trace: dict[str, np.ndarray]
    config: dict
    config_hash: str
    data_hash: str


def save_checkpoint(path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` atomically (temporary file + `os.replace`)."""
    from moseq import __version__

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
    config of the fit, and the keypoints it was fitted on.

    Layout of the npz: `format` = "moseq-model", `format_version`, `moseq_version`, `config`
    (JSON), `keypoint_names`, `fps` (NaN when unknown), `params/{variable}` (e.g. betas, pi,
    Ab, Q, Cd, sigmasq).
    """

    params: dict[str, np.ndarray]
    config: Config
    keypoint_names: tuple[str, ...]
    fps: float | None


def save_model(path, fitted: FittedModel) -> None:
    from moseq import __version__

    arrays = {"format": MODEL_FORMAT, "format_version": FILE_FORMAT_VERSION,
              "moseq_version": __version__, "config": json.dumps(fitted.config.to_dict()),
              "keypoint_names": np.asarray(fitted.keypoint_names, dtype=str),
              "fps": np.nan if fitted.fps is None else fitted.fps}
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
    fps = float(arrays["fps"])
    return FittedModel(params=_split(arrays, "params/"), config=config,
                       keypoint_names=tuple(str(k) for k in arrays["keypoint_names"]),
                       fps=None if math.isnan(fps) else fps)


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------

class ProgressBar:
    """A scheduler callback drawing `[####----] sweep s/S stage  r sweeps/s  log joint L` on
    `stream` (redrawn in place on a terminal, one line per chunk otherwise)."""

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total, self.width = total, width
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.stage, self.start_sweep, self.started = "", 0, time.perf_counter()

    def begin(self, stage: str, start_sweep: int) -> None:
        self.stage, self.start_sweep, self.started = stage, start_sweep, time.perf_counter()

    def __call__(self, sweeps_done: int, state, trace) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = (sweeps_done - self.start_sweep) / elapsed
        filled = int(self.width * sweeps_done / max(self.total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        log_joint = float(np.asarray(trace["log_joint"])[-1]) if len(trace["log_joint"]) else 0
        line = (f"[{bar}] sweep {sweeps_done}/{self.total} {self.stage:>4}  {rate:6.2f} "
                f"sweeps/s  log joint {log_joint:.6g}")
        end = "" if self.tty and sweeps_done < self.total else "\n"
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


# --------------------------------------------------------------------------------------------
# Data and model
# --------------------------------------------------------------------------------------------

def _float_dtype(config: Config):
    return np.float64 if config.fitting.float64 else np.float32


def load_data(config: Config, paths: Sequence[str] | None = None,
              keypoints: Sequence[str] | Mapping[str, str] | None = None,
              rename: Sequence[str] | None = None):
    """Load and stack the recordings a config names: `(batch, recordings)`.

    `paths` replace the config's; `keypoints` replaces `data.keypoints` (the names in the
    files) and `rename` gives the names to use instead (e.g. the fitted model's).
    """
    import moseq.io

    keypoints = config.data.keypoints if keypoints is None else list(keypoints)
    recordings = moseq.io.load_keypoints(
        config.data_paths() if paths is None else [os.fspath(p) for p in paths],
        format=config.data.format, keypoints=keypoints, individual=config.data.individual,
        min_frames=config.model.nlags + 1)
    if rename is not None:
        recordings = {name: dataclasses.replace(rec, keypoint_names=tuple(rename))
                      for name, rec in recordings.items()}
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


def _data_hash(batch) -> str:
    digest = hashlib.sha256()
    for key in sorted(batch.data):
        value = np.ascontiguousarray(batch.data[key])
        digest.update(f"{key}{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    digest.update(json.dumps([list(map(str, batch.keys)), np.asarray(batch.bounds).tolist(),
                              list(batch.keypoint_names)]).encode())
    return digest.hexdigest()


def build_model(config: Config, batch):
    """The keypoint-SLDS of `config` for `batch` (kappa: `model.kappa_full`)."""
    from moseq.models import keypoint_slds

    return keypoint_slds(batch.anterior_idxs, batch.posterior_idxs,
                         keypoint_dim=int(batch.data["Y"].shape[-1]), **config.model_kwargs())


# --------------------------------------------------------------------------------------------
# Fit
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FitResult:
    """What `fit` returns: the final state, the trace of both stages (`log_joint`, `stage`),
    the batch that was fitted, the project folder and the paths written."""

    state: dict
    trace: dict
    batch: Any
    project: Path
    paths: dict


def _changed_keys(old: Mapping, new: Mapping) -> list[str]:
    old_flat, new_flat = _flat(old, RESUMABLE_KEYS), _flat(new, RESUMABLE_KEYS)
    return sorted(k for k in set(old_flat) | set(new_flat) if old_flat.get(k) != new_flat.get(k))


def _concat_traces(traces: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    traces = [t for t in traces if t and len(t.get("log_joint", ()))]
    if not traces:
        return {"log_joint": np.zeros(0), "stage": np.zeros(0, "<U4")}
    return {k: np.concatenate([np.asarray(t[k]) for t in traces]) for k in traces[0]}


def fit(config_or_project, resume: bool = False, *, overwrite: bool = False,
        progress: bool = True, export: bool = True, report: bool = True,
        callbacks: Sequence[Callable] = ()) -> FitResult:
    """Fit the keypoint-SLDS of a project: the AR-only stage, then the full model, with
    periodic atomic checkpoints; then save the model, the results and a report.

    Args:
        config_or_project: a project folder, a config file, or a `Config`.
        resume: continue from `checkpoint.npz` (refused when a key that changes the chain
            differs from the checkpoint's; `fitting.full_sweeps` may be raised to extend a
            finished fit). Without a checkpoint, a new fit starts.
        overwrite: start a new fit even though a checkpoint exists (it is replaced).
        progress: draw a progress bar on stderr.
        export: write `model.npz`, `results.h5` and `csv/`; report: write `report/`.
        callbacks: extra `fn(sweeps_done, state, trace)` called after each chunk (after the
            checkpoint); `trace` is that of the fit so far.

    Returns:
        A `FitResult`.
    """
    import jax

    config, project = _resolve_config(config_or_project)
    checkpoint_path = project / CHECKPOINT_NAME
    if checkpoint_path.exists() and not (resume or overwrite):
        done = load_checkpoint(checkpoint_path).sweeps
        raise FileExistsError(
            f"{checkpoint_path} holds a fit at sweep {done}; pass resume=True (`moseq fit "
            "--resume`) to continue it, or overwrite=True (`--overwrite`) to start again.")
    if resume and not checkpoint_path.exists() and progress:
        print(f"No checkpoint at {checkpoint_path}; starting a new fit.", file=sys.stderr)
    with jax.enable_x64(config.fitting.float64):
        batch, recordings = load_data(config)
        state, trace = _run_fit(config, batch, checkpoint_path, resume and
                                checkpoint_path.exists(), progress, callbacks)
        paths = {"checkpoint": str(checkpoint_path)}
        if export or report:
            paths.update(_write_outputs(config, project, batch, recordings, state, trace,
                                        export=export, report=report))
    return FitResult(state=state, trace=trace, batch=batch, project=project, paths=paths)


def _run_fit(config: Config, batch, checkpoint_path: Path, resume: bool, progress: bool,
             callbacks: Sequence[Callable]):
    import jax

    from moseq.models.fitting import ar_only_frozen, with_kappa

    fitting = config.fitting
    model = build_model(config, batch)
    ar_model = with_kappa(model, config.model.kappa_ar)
    full_model = with_kappa(model, config.model.kappa_full)
    key = jax.random.key(fitting.seed)
    ar_sweeps, total = fitting.ar_sweeps, fitting.ar_sweeps + fitting.full_sweeps
    chain_hash, data_hash = config.chain_hash(), _data_hash(batch)

    if resume:
        checkpoint = load_checkpoint(checkpoint_path)
        if checkpoint.config_hash != chain_hash:
            changed = _changed_keys(checkpoint.config, config.to_dict())
            raise ConfigError(
                f"Cannot resume {checkpoint_path}: the config changed since it was written, in "
                f"{changed or 'keys that change the chain'}; restore them, or start a new fit "
                f"with `--overwrite`. (Only {list(RESUMABLE_KEYS)} may change on resume.)")
        if checkpoint.data_hash != data_hash:
            raise ValueError(
                f"Cannot resume {checkpoint_path}: the data differ from those it was fitted on "
                "(files changed or added); restore them, or start a new fit with `--overwrite`.")
        if checkpoint.sweeps > total:
            raise ConfigError(
                f"{checkpoint_path} is at sweep {checkpoint.sweeps}, beyond ar_sweeps + "
                f"full_sweeps = {total}; raise `fitting.full_sweeps` to at least "
                f"{checkpoint.sweeps - ar_sweeps}.")
        done, state, prior_trace = checkpoint.sweeps, checkpoint.state, checkpoint.trace
    else:
        state = ar_model.init(jax.random.fold_in(key, 0), batch.data)
        done, prior_trace = 0, {}

    bar = ProgressBar(total) if progress else None
    saved = {"sweeps": done}

    def save(sweeps_done, state, trace):
        save_checkpoint(checkpoint_path, Checkpoint(
            sweeps=int(sweeps_done), state={k: np.asarray(v) for k, v in state.items()},
            trace=trace, config=config.to_dict(), config_hash=chain_hash, data_hash=data_hash))
        saved["sweeps"] = sweeps_done

    if not resume:
        save(0, state, _concat_traces([]))

    stages = [("ar", ar_model, 1, 0, ar_sweeps, ar_only_frozen(model)),
              ("full", full_model, 2, ar_sweeps, total, None)]
    for stage, stage_model, fold, first, end, frozen in stages:
        if done >= end:
            continue
        start = max(done, first)
        earlier = prior_trace

        def on_chunk(sweeps_done, chunk_state, run_trace, stage=stage, end=end,
                     earlier=earlier):
            run_trace = dict(run_trace)
            run_trace["stage"] = np.full(len(run_trace["log_joint"]), stage, dtype="<U4")
            trace = _concat_traces([earlier, run_trace])
            every = fitting.checkpoint_every
            if sweeps_done == end or (every and sweeps_done // every > saved["sweeps"] // every):
                save(sweeps_done, chunk_state, trace)
            for callback in callbacks:
                callback(sweeps_done, chunk_state, trace)
            if bar is not None:
                bar(sweeps_done, chunk_state, trace)

        if bar is not None:
            bar.begin(stage, start)
        kwargs = {} if frozen is None else {"frozen": frozen}
        state, run_trace = stage_model.run(
            jax.random.fold_in(key, fold), batch.data, state, end - start, start_sweep=start,
            chunk_size=fitting.chunk_size, callbacks=[on_chunk], progress=False, **kwargs)
        run_trace = dict(run_trace)
        run_trace["stage"] = np.full(len(run_trace["log_joint"]), stage, dtype="<U4")
        prior_trace = _concat_traces([prior_trace, run_trace])
        done = end
    state = {k: np.asarray(v) for k, v in state.items()}
    return state, _concat_traces([prior_trace])


def _metadata(config: Config, keypoint_names, fps, **extra) -> dict:
    return {"fps": fps, "keypoint_names": list(keypoint_names), "nlags": config.model.nlags,
            "config": {s: {k: v for k, v in section.items() if v is not None}
                       for s, section in config.to_dict().items()}, **extra}


def _write_outputs(config: Config, project: Path, batch, recordings, state, trace, *,
                   export: bool, report: bool) -> dict:
    import moseq.export
    import moseq.viz
    from moseq.models.fitting import parameters, syllable_marginals

    model = build_model(config, batch)
    fps = _fps(config, recordings)
    nlags = config.model.nlags
    paths = {}
    if export:
        save_model(project / MODEL_NAME, FittedModel(
            params={k: np.asarray(v) for k, v in parameters(model, state).items()},
            config=config, keypoint_names=batch.keypoint_names, fps=fps))
        marginals, _ = syllable_marginals(model, batch.data, state)
        results = moseq.export.results_per_recording(state, batch.data, nlags,
                                                     marginals=np.asarray(marginals), batch=batch)
        moseq.export.save_results_h5(project / RESULTS_NAME, results,
                                     _metadata(config, batch.keypoint_names, fps))
        moseq.export.save_results_csv(project / CSV_DIR, results)
        paths.update(model=str(project / MODEL_NAME), results=str(project / RESULTS_NAME),
                     csv=str(project / CSV_DIR))
    if report:
        paths["report"] = moseq.viz.write_report(project / REPORT_DIR, trace, state, batch.data,
                                                 nlags, batch=batch, fps=fps)
    return paths


# --------------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ApplyResult:
    """What `apply` returns: the per-recording results (`moseq.export` tables), the
    `moseq.models.AppliedModel`, the batch, and the paths written."""

    results: dict
    applied: Any
    batch: Any
    paths: dict


def apply(project_or_model, paths: Sequence[str] | str, output: str | os.PathLike | None = None,
          *, keypoints: Sequence[str] | Mapping[str, str] | None = None,
          num_sweeps: int | None = None, progress: bool = True) -> ApplyResult:
    """Apply a fitted model (`PROJECT/model.npz`) to recordings: its parameters fixed, the
    syllables, latents, heading and centroid of the new recordings sampled.

    Args:
        project_or_model: a project folder or a `model.npz`.
        paths: the recordings' files or folders (read with the fit's `data` options).
        output: folder for `results.h5` and `csv/` (default `PROJECT/applied`).
        keypoints: when the new files name keypoints differently: a list of their names in
            the order of the model's keypoints, or a dict `{name in file: model name}`.
        num_sweeps: sweeps (default: the config's `apply.num_sweeps`).
        progress: draw a progress bar on stderr.
    """
    import jax

    import moseq.export
    from moseq.models.fitting import apply_model

    source = Path(project_or_model)
    fitted = load_model(source)
    config = fitted.config
    project = source if source.is_dir() else source.parent
    output = Path(output) if output is not None else project / "applied"
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    names = list(fitted.keypoint_names)
    if keypoints is None:
        in_file = names
    elif isinstance(keypoints, Mapping):
        inverse = {model_name: file_name for file_name, model_name in keypoints.items()}
        missing = [n for n in names if n not in inverse]
        if missing:
            raise ValueError(f"`keypoints` maps no file keypoint to the model's {missing}; the "
                             f"model's keypoints are {names}.")
        in_file = [inverse[n] for n in names]
    else:
        in_file = list(keypoints)
        if len(in_file) != len(names):
            raise ValueError(f"`keypoints` must name {len(names)} keypoints of the files, in the "
                             f"order of the model's {names}; got {in_file}.")
    num_sweeps = config.apply.num_sweeps if num_sweeps is None else num_sweeps
    marginal_sweeps = min(config.apply.marginal_sweeps, max(num_sweeps, 1))
    with jax.enable_x64(config.fitting.float64):
        batch, recordings = load_data(config, paths=paths, keypoints=in_file, rename=names)
        model = build_model(config, batch)
        bar = ProgressBar(num_sweeps) if progress else None
        if bar is not None:
            bar.begin("apply", 0)
        applied = apply_model(model, config.apply.seed, batch.data, fitted.params, num_sweeps,
                              marginal_sweeps=marginal_sweeps,
                              chunk_size=config.fitting.chunk_size, progress=False,
                              callbacks=[bar] if bar is not None else [])
        state = {k: np.asarray(v) for k, v in applied.state.items()}
        marginals = None if applied.marginals is None else np.asarray(applied.marginals)
        results = moseq.export.results_per_recording(state, batch.data, config.model.nlags,
                                                     marginals=marginals, batch=batch)
    fps = config.data.fps or _fps(config, recordings) or fitted.fps
    output.mkdir(parents=True, exist_ok=True)
    moseq.export.save_results_h5(output / RESULTS_NAME, results, _metadata(
        config, names, fps, applied_to=[os.fspath(p) for p in paths], apply_sweeps=num_sweeps))
    moseq.export.save_results_csv(output / CSV_DIR, results)
    return ApplyResult(results=results, applied=applied, batch=batch,
                       paths={"results": str(output / RESULTS_NAME),
                              "csv": str(output / CSV_DIR)})
