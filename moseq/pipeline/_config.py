"""The project's config file: four sections of typed, commented options, read from and
written to TOML, validated with errors that name the key and the fix."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import inspect
import json
import math
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moseq._atomic import atomic_path
from moseq.io import check_heading_keypoints, check_segments
from moseq.models import arhmm_blocks, keypoint_slds

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAME = "config.toml"


def _option(default, kind: str, help: str, *, optional: bool = False, required: bool = False):
    """A config field. kind: int, float, bool, str, strs (list of strings; a single string is
    accepted), choice:a|b. optional: None allowed (written as a commented-out line).
    required: must be in the file (no default)."""
    metadata = {"kind": kind, "help": help, "optional": optional, "required": required}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _keyword_option(name: str, kind: str, help: str):
    """A [model] field whose default is the keyword `name` of `keypoint_slds` (or of the
    `arhmm_blocks` keywords it passes on): the model constructors are the defaults' one home."""
    default = _MODEL_DEFAULTS[name]
    return _option(float(default) if kind == "float" else default, kind, help)


_MODEL_DEFAULTS = {name: parameter.default for function in (arhmm_blocks, keypoint_slds)
                   for name, parameter in inspect.signature(function).parameters.items()
                   if parameter.default is not inspect.Parameter.empty}


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

    # The docstring heads the section in config.toml. Defaults are keypoint_slds's keyword
    # defaults; kappa_ar and kappa_full are the pipeline's own (the kappa of each stage).

    latent_dim: int = _keyword_option(
        "latent_dim", "int", "Dimension of the pose latent x (PCA components).")
    num_states: int = _keyword_option(
        "num_states", "int", "Maximum number of syllables (weak-limit HDP).")
    nlags: int = _keyword_option("nlags", "int", "Autoregressive order.")
    kappa_ar: float = _option(1e6, "float", "Stickiness in the AR-only stage.")
    kappa_full: float = _option(
        1e4, "float", "Stickiness in the full model (larger: longer syllables; calibrate with "
        "moseq.models.kappa_scan to a median duration of about 0.3-0.4 s).")
    alpha: float = _keyword_option(
        "alpha", "float", "HDP concentration of each transition row.")
    gamma: float = _keyword_option(
        "gamma", "float", "HDP concentration of the global syllable weights.")
    transitions: str = _keyword_option(
        "transitions", "choice:hdp|sticky_dir", "Transition prior: sticky HDP, or sticky "
        "Dirichlet (concentration `beta`).")
    beta: float = _keyword_option("beta", "float", "Concentration of the sticky-Dirichlet prior.")
    S_0_scale: float = _keyword_option("S_0_scale", "float", "Scale of the AR noise prior.")
    K_0_scale: float = _keyword_option("K_0_scale", "float", "Scale of the AR matrix prior.")
    sigmasq_loc: float = _keyword_option(
        "sigmasq_loc", "float", "Variance of the centroid's random walk.")
    nu_s: float = _keyword_option(
        "nu_s", "float", "Degrees of freedom of the keypoint noise scales.")
    slope: float = _keyword_option(
        "slope", "float", "Confidence error model: slope of log noise on log confidence.")
    intercept: float = _keyword_option(
        "intercept", "float", "Confidence error model: intercept.")
    nu_sigma: float = _keyword_option(
        "nu_sigma", "float", "Degrees of freedom of the sigmasq prior.")
    sigmasq_0: float = _keyword_option("sigmasq_0", "float", "Scale of the sigmasq prior.")
    conf_threshold: float = _keyword_option(
        "conf_threshold", "float", "Frames whose keypoints are all above this confidence feed "
        "the PCA.")
    whiten: bool = _keyword_option("whiten", "bool", "Whiten the PCA latents.")
    fix_heading: bool = _keyword_option(
        "fix_heading", "bool", "Keep the heading at its initial value.")
    vertical_axis: int = _keyword_option(
        "vertical_axis", "int", "3-D keypoints: the axis the heading turns about (0, 1, 2: x, "
        "y, z); unused in 2-D.")
    resample_sigmasq: bool = _keyword_option(
        "resample_sigmasq", "bool", "Resample sigmasq (keypoint-MoSeq keeps it at 1).")
    jitter: float = _keyword_option("jitter", "float", "Diagonal jitter of the Kalman sampler.")


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
    compile_cache: bool = _option(
        True, "bool", "Keep the compiled programs in JAX's persistent compilation cache "
        "(`moseq fit` and `moseq apply`; folder: $MOSEQ_COMPILATION_CACHE, else "
        "$XDG_CACHE_HOME/moseq/jax or ~/.cache/moseq/jax), so the next run of the same "
        "shapes starts without compiling; false: compile afresh every run.")
    chunk_frames: int | None = _option(
        None, "int", "Frames each device works on at once (whole recordings, at least one): "
        "lower it if a fit does not fit in memory; unset: sized to the device's memory.",
        optional=True)


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
                  "fitting.compile_cache", "fitting.chunk_frames", "apply.num_sweeps",
                  "apply.marginal_sweeps", "apply.seed")


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
        if self.model.vertical_axis not in (0, 1, 2):
            raise ConfigError(f"{source}: `model.vertical_axis` must be 0, 1 or 2 (x, y or z: "
                              f"the axis the heading turns about in 3-D); got "
                              f"{self.model.vertical_axis!r}.")
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
        if self.fitting.chunk_frames is not None:
            positive("fitting.chunk_frames", self.fitting.chunk_frames)
        positive("data.seg_overlap", self.data.seg_overlap, allow_zero=True)
        try:
            check_heading_keypoints(self.data.anterior, self.data.posterior, names=(
                "`data.anterior` (--anterior)", "`data.posterior` (--posterior)"))
            check_segments(self.data.seg_length, self.data.seg_overlap,
                           names=("`data.seg_length`", "`data.seg_overlap`"))
        except ValueError as error:
            raise ConfigError(f"{source}: {error}") from None
        for key in ("anterior", "posterior") if self.data.keypoints is not None else ():
            left_out = [n for n in getattr(self.data, key) if n not in self.data.keypoints]
            if left_out:
                raise ConfigError(f"{source}: `data.{key}` names {left_out}, which "
                                  f"`data.keypoints` {self.data.keypoints} leaves out; add "
                                  f"them to it or name other {key} keypoints.")

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
        with atomic_path(path) as temporary:
            Path(temporary).write_bytes(self.to_toml().encode())

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


