"""Export a fitted model's per-frame results: syllables, their probability, latent state,
centroid and heading, one table per recording, as HDF5 or CSV.

    results = moseq.export.results_per_recording(state, data, nlags, batch=batch)
    moseq.export.save_results_h5("results.h5", results, {"fps": 30, "kappa": 1e6})
    moseq.export.save_results_csv("results/", results)

Frame convention. The model's syllables `z (N, T - nlags)` start at frame `nlags`
(`z[:, i]` labels frame `i + nlags`). Exported syllables cover every frame: the first `nlags`
frames of each row repeat its first syllable (as keypoint-moseq does), and so do the
marginal probabilities.

Syllable numbers. The model samples states `0..K-1`; exported syllables are numbered by a
`syllable_order` (`order[syllable] = state`). A project's numbering belongs to its fitted
model: `moseq fit` fixes it once, at the end of the fit, by frequency in the fitted
recordings (0 = the most used, counted by runs), stores it in `model.npz`, and every later
result (`moseq apply`, the report, `results.h5` of new data) uses it, so syllable 3 means the
same behaviour in every batch. Without an order, `results_per_recording` numbers the
syllables by their frequency in the results at hand.

Layout of `results.h5` (written by `save_results_h5`, read by `load_results_h5`):

    /                              attributes: format = "moseq-results", format_version = 1,
                                   moseq_version, and one attribute per metadata entry
                                   (e.g. fps, keypoint_names, hyperparameters); nested
                                   dicts are flattened with "." ("hyperparameters.kappa")
    /{recording}/                  one group per recording
        frame                      (T,) int    the frame's index in its recording
        syllable                   (T,) int    syllable number (see above)
        syllable_probability       (T,) float  marginal probability of that syllable
                                               (NaN when no marginals were given)
        latent_state               (T, D)      pose latent x (AR-HMM: the data's x)
        centroid                   (T, d)      centroid v, (x, y[, z])
        heading                    (T,)        heading h, radians

`T` counts the recording's kept frames: frames that the mask excludes (padding, frames with
no keypoint) are left out, so `frame` need not be contiguous. A dataset is present only if
its variable is in the model (an AR-HMM has no centroid or heading).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence

import h5py
import numpy as np
from jaxtyping import Float, Int

from moseq._atomic import atomic_path
from moseq._version import __version__
from moseq.io import Batch, unbatch
from moseq.ops.labels import frequency_order, pad_to_frames
from moseq.ops.labels import relabel_by_frequency as relabel_by_frequency  # re-exported

FORMAT = "moseq-results"
FORMAT_VERSION = 1
FIELDS = ("frame", "syllable", "syllable_probability", "latent_state", "centroid", "heading")


def results_per_recording(
    state: Mapping, data: Mapping, nlags: int, names: Sequence[str] | None = None,
    marginals: Float[np.ndarray, "N t K"] | None = None, batch: Batch | None = None,
    relabel: bool = True, syllable_order: Int[np.ndarray, " K"] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-frame results of a fitted model, one table per recording.

    Args:
        state: the model state; uses `z (N, T - nlags)` and, where present, `x (N, T, D)`
            (else `data["x"]`, the AR-HMM's input), `v (N, T, d)`, `h (N, T)`, and `pi` for
            the number of states.
        data: the model's data; uses `mask (N, T)` (0 = padding or missing frame).
        nlags: the AR order; `z[:, i]` labels frame `i + nlags`.
        names: the recording of each row when no `batch` is given (default
            "recording0", "recording1", ...).
        marginals: optional `(N, T - nlags, K)` marginal probabilities of `z`.
        batch: the `moseq.io.Batch` the data came from; rows are then stitched back into
            recordings with `moseq.io.unbatch` (segments and overlaps undone).
        relabel: without a `syllable_order`, number the syllables by their frequency in
            these results (`syllable_order_of`); False keeps the model's state numbers.
        syllable_order: the fitted model's numbering, `syllable_order[syllable] = state`
            (`moseq.pipeline.FittedModel.syllable_order`): results of new data then carry
            the numbers of the fit.

    Returns:
        `{name: {"frame", "syllable", "syllable_probability", "latent_state", "centroid",
        "heading"}}` with arrays `(T_name, ...)` over the recording's unmasked frames (see the
        module docstring); variables the model lacks are left out.
    """
    mask = np.asarray(data["mask"])
    z = np.asarray(state["z"])
    num_rows, num_frames = mask.shape
    if z.shape != (num_rows, num_frames - nlags):
        raise ValueError(
            f"`state['z']` must have shape (N, T - nlags) = ({num_rows}, {num_frames - nlags}) "
            f"for `data['mask']` {mask.shape} and nlags={nlags}; got {z.shape}. Check `nlags`."
        )
    num_states = int(np.shape(state["pi"])[0]) if "pi" in state else int(z.max()) + 1

    per_frame = {"syllable": pad_to_frames(z, nlags)}
    if marginals is None:
        per_frame["syllable_probability"] = np.full(mask.shape, np.nan)
    else:
        marginals = np.asarray(marginals)
        if marginals.shape[:2] != z.shape or marginals.shape[2] != num_states:
            raise ValueError(
                f"`marginals` must have shape (N, T - nlags, K) = (*{z.shape}, {num_states}); "
                f"got {marginals.shape}."
            )
        probability = np.take_along_axis(marginals, z[..., None], axis=-1)[..., 0]
        per_frame["syllable_probability"] = pad_to_frames(probability, nlags)
    latent = state["x"] if "x" in state else data.get("x")
    for field, value in (("latent_state", latent), ("centroid", state.get("v")),
                         ("heading", state.get("h"))):
        if value is not None:
            per_frame[field] = np.asarray(value)
            if per_frame[field].shape[:2] != mask.shape:
                raise ValueError(
                    f"The model's {field} must have shape (N, T, ...) with (N, T) = "
                    f"{mask.shape} like `data['mask']`; got {per_frame[field].shape}."
                )

    if batch is not None:
        stitched = {field: unbatch(value, batch) for field, value in per_frame.items()}
        kept = unbatch(mask, batch)
        tables = {name: {field: stitched[field][name] for field in per_frame} for name in kept}
    else:
        if names is None:
            names = [f"recording{row}" for row in range(num_rows)]
        if len(names) != num_rows:
            raise ValueError(f"`names` must name the {num_rows} rows; got {len(names)} names.")
        kept = dict(zip(names, mask, strict=True))
        tables = {
            name: {field: value[row] for field, value in per_frame.items()}
            for row, name in enumerate(names)
        }
    results = {}
    for name, table in tables.items():
        frames = np.flatnonzero(kept[name] > 0)
        results[str(name)] = {"frame": frames, **{f: v[frames] for f, v in table.items()}}
    if syllable_order is None and relabel:
        syllable_order = syllable_order_of(results, num_states)
    return results if syllable_order is None else renumber(results, syllable_order)


def syllable_order_of(results: Mapping[str, Mapping[str, np.ndarray]], num_states: int,
                      runlength: bool = True) -> np.ndarray:
    """The numbering by frequency of `results`' syllables, `order[syllable] = state`
    (`moseq.ops.labels.frequency_order` over the recordings' exported frames: 0 is the most
    used, counted by runs unless `runlength=False`, a run ending where frames are missing;
    unused states come last)."""
    return frequency_order(syllable_stretches(results), num_states=num_states,
                           runlength=runlength)


def syllable_stretches(results: Mapping[str, Mapping[str, np.ndarray]]) -> list[np.ndarray]:
    """The syllables of `results` in stretches of consecutive frames (a recording split
    where frames are missing), for run counts and durations that never span a gap."""
    stretches = []
    for table in results.values():
        gaps = np.flatnonzero(np.diff(table["frame"]) != 1) + 1
        stretches += np.split(np.asarray(table["syllable"]), gaps)
    return stretches


def renumber(results: Mapping[str, Mapping[str, np.ndarray]],
             syllable_order: Int[np.ndarray, " K"]) -> dict[str, dict[str, np.ndarray]]:
    """`results` whose syllables are model states, numbered by `syllable_order`
    (`syllable_order[syllable] = state`, a permutation of `0..K-1`)."""
    syllable_order = np.asarray(syllable_order)
    num_states = len(syllable_order)
    if syllable_order.ndim != 1 or not np.array_equal(np.sort(syllable_order),
                                                      np.arange(num_states)):
        raise ValueError("`syllable_order` must be a permutation of 0..K-1 "
                         f"(order[syllable] = state); got {syllable_order}.")
    number = np.argsort(syllable_order)
    renumbered = {}
    for name, table in results.items():
        states = np.asarray(table["syllable"])
        if states.size and states.max() >= num_states:
            raise ValueError(f"Recording {name!r} has state {states.max()}, beyond the "
                             f"{num_states} states of `syllable_order`; use the order of the "
                             "model these results came from.")
        renumbered[name] = {**table, "syllable": number[states]}
    return renumbered


def save_results_h5(path: str | os.PathLike, results: Mapping[str, Mapping[str, np.ndarray]],
                    metadata: Mapping | None = None) -> None:
    """Write `results` (from `results_per_recording`) to `path` in the documented layout.

    The file (and its folder, if missing) is written next to `path` under a temporary name
    and moved into place, so a crash never leaves a half-written `path`. `metadata` values
    are scalars, strings, arrays, lists, or dicts of those (flattened with "."); None values
    are skipped.
    """
    for name in results:
        _check_name(name)
    with atomic_path(path, suffix=".h5.tmp") as temporary:
        with h5py.File(temporary, "w") as file:
            file.attrs["format"] = FORMAT
            file.attrs["format_version"] = FORMAT_VERSION
            file.attrs["moseq_version"] = __version__
            for key, value in _flatten(metadata or {}).items():
                file.attrs[key] = value
            for name, table in results.items():
                group = file.create_group(name)
                for field, value in table.items():
                    group.create_dataset(field, data=np.asarray(value))


def load_results_h5(path: str | os.PathLike) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Read a file of `save_results_h5`: `(results, metadata)`, nested metadata restored."""
    with h5py.File(path, "r") as file:
        if file.attrs.get("format") != FORMAT:
            raise ValueError(
                f"{os.fspath(path)!r} is not a moseq results file (no attribute "
                f"format={FORMAT!r}); write it with `moseq.export.save_results_h5`."
            )
        results = {
            name: {field: group[field][()] for field in group} for name, group in file.items()
        }
        metadata: dict = {}
        for key, value in file.attrs.items():
            if key == "format":
                continue
            *parents, leaf = key.split(".")
            node = metadata
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = _from_attribute(value)
    return results, metadata


def save_results_csv(folder: str | os.PathLike, results: Mapping[str, Mapping[str, np.ndarray]]
                     ) -> list[str]:
    """One CSV per recording, `{folder}/{recording}.csv`; returns the paths written.

    Columns: frame, syllable, syllable_probability, latent_state_0 .. latent_state_{D-1},
    centroid_x, centroid_y[, centroid_z], heading (those the results have). Floats are
    written with 8 significant digits; missing probabilities as "nan".
    """
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, table in results.items():
        _check_name(name)
        header, columns = [], []
        for field in FIELDS:
            if field not in table:
                continue
            value = np.asarray(table[field])
            if value.ndim == 1:
                header.append(field)
                columns.append(value)
            else:
                suffixes = "xyz" if field == "centroid" else range(value.shape[1])
                header += [f"{field}_{suffix}" for suffix in suffixes][: value.shape[1]]
                columns += list(value.T)
        path = os.path.join(folder, f"{name}.csv")
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            for row in zip(*columns, strict=True):
                writer.writerow([_format_cell(cell) for cell in row])
        paths.append(path)
    return paths


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(
            f"Recording name {name!r} cannot name an HDF5 group or a file; rename the "
            "recording (no '/', not empty)."
        )


def _format_cell(cell) -> str:
    if np.issubdtype(type(cell), np.integer):
        return str(int(cell))
    return f"{float(cell):.8g}"


def _flatten(metadata: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in metadata.items():
        if value is None:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, str | bytes | int | float | np.generic):
            flat[name] = value
        else:
            value = np.asarray(value)
            if value.dtype.kind in "US":
                value = value.astype(h5py.string_dtype())
            flat[name] = value
    return flat


def _from_attribute(value):
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O" or value.dtype.kind in "US":
            return [str(item) for item in value.tolist()]
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value
