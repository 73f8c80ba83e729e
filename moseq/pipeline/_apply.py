"""`apply`: a fitted model applied to new recordings."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moseq._atomic import check_writable, remove_temporaries, write_folder
from moseq.io import MissingKeypointsError
from moseq.models.fitting import apply_model
from moseq.pipeline._cache import cache_note, compilation_cache
from moseq.pipeline._files import CSV_DIR, RESULTS_NAME, load_model, replace_outputs
from moseq.pipeline._progress import ProgressBar
from moseq.pipeline._project import _fps, _metadata, build_model, load_data


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
          num_sweeps: int | None = None, progress: bool = True,
          compile_cache: bool | None = None) -> ApplyResult:
    """Apply a fitted model (`PROJECT/model.npz`) to recordings: its parameters fixed, the
    syllables, latents, heading and centroid of the new recordings sampled. Syllables carry
    the fit's numbers (`FittedModel.syllable_order`), whatever their frequency in the new data.

    Args:
        project_or_model: a project folder or a `model.npz`.
        paths: the recordings' files or folders (read with the fit's `data` options).
        output: folder for `results.h5` and `csv/` (default `PROJECT/applied`).
        keypoints: when the new files name keypoints differently: a list of their names in
            the order of the model's keypoints, or a dict `{name in file: model name}`.
        num_sweeps: sweeps (default: the config's `apply.num_sweeps`).
        progress: show the phases, then a progress bar, on stderr.
        compile_cache: use JAX's persistent compilation cache (`compilation_cache`); None:
            the fit's `fitting.compile_cache`.

    The outputs of an earlier application to `output` that this one does not write again
    (the CSV of a recording not given this time) are removed, if unchanged since.
    """
    import jax

    import moseq.export

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
    with ProgressBar(num_sweeps, show=progress) as bar:
        for path in remove_temporaries(output):
            bar.note(f"removed {path}, left by an interrupted write")
        check_writable(output)
        cache = config.fitting.compile_cache if compile_cache is None else compile_cache
        with jax.enable_x64(config.fitting.float64), compilation_cache(cache) as cache_folder:
            bar.note(cache_note(cache_folder))
            bar.phase("loading the data")
            try:
                batch, recordings = load_data(config, paths=paths, keypoints=in_file,
                                              rename=names)
            except MissingKeypointsError as error:
                if keypoints is not None:
                    raise
                raise ValueError(
                    f"The model was fitted on the keypoints {names}; recording "
                    f"{error.recording.name!r} ({error.recording.path}) lacks {error.missing} "
                    f"(its keypoints: {list(error.recording.keypoint_names)}). If the files "
                    "name them otherwise, pass `--keypoints` (Python: `keypoints=`): the "
                    "files' names in the model's order, or FILE_NAME=MODEL_NAME,...") from None
            _check_dimensions(fitted, batch, paths)
            bar.phase_done(f"loaded {len(recordings)} recording(s)")
            model = build_model(config, batch)
            bar.begin("apply", 0, num_sweeps)
            applied = apply_model(model, config.apply.seed, batch.data, fitted.params,
                                  num_sweeps, marginal_sweeps=marginal_sweeps,
                                  chunk_size=config.fitting.chunk_size, progress=False,
                                  callbacks=[bar])
            state = {k: np.asarray(v) for k, v in applied.state.items()}
            marginals = None if applied.marginals is None else np.asarray(applied.marginals)
            results = moseq.export.results_per_recording(
                state, batch.data, config.model.nlags, marginals=marginals, batch=batch,
                syllable_order=fitted.syllable_order)
        fps = config.data.fps or _fps(config, recordings) or fitted.fps
        moseq.export.save_results_h5(output / RESULTS_NAME, results, _metadata(
            config, names, fps, applied_to=[os.fspath(p) for p in paths],
            apply_sweeps=num_sweeps))
        written = [output / RESULTS_NAME, *write_folder(output / CSV_DIR, lambda folder: (
            moseq.export.save_results_csv(folder, results)))]
        for path in replace_outputs(output, written, "apply"):
            bar.note(f"removed {path}, an output of an earlier application")
    return ApplyResult(results=results, applied=applied, batch=batch,
                       paths={"results": str(output / RESULTS_NAME),
                              "csv": str(output / CSV_DIR)})


def _check_dimensions(fitted, batch, paths) -> None:
    """Refuse recordings of another keypoint dimension than the fitted model's: its emission
    matrix `Cd` has (k - 1) d rows for k keypoints in d dimensions."""
    num_keypoints = len(fitted.keypoint_names)
    fitted_dim = np.shape(fitted.params["Cd"])[0] // max(num_keypoints - 1, 1)
    data_dim = int(batch.data["Y"].shape[-1])
    if fitted_dim != data_dim:
        raise ValueError(
            f"The model was fitted on {fitted_dim}-D keypoints, but the recordings of {paths} "
            f"are {data_dim}-D: apply a model fitted on {data_dim}-D data (or give "
            f"{fitted_dim}-D recordings).")
