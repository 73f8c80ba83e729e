"""`fit`: the checkpointed staged fit of a project, then its model, results and report."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moseq._atomic import check_writable, remove_temporaries, write_folder
from moseq.core import NumericalFailure
from moseq.core.memory import estimate_memory
from moseq.models.fitting import (
    concat_traces,
    fit_staged,
    parameters,
    staged_init,
    syllable_marginals,
)
from moseq.pipeline._cache import cache_note, compilation_cache
from moseq.pipeline._config import RESUMABLE_KEYS, Config, ConfigError, _flat
from moseq.pipeline._distributed import HEARTBEAT_TIMEOUT, across_processes
from moseq.pipeline._distributed import initialize as initialize_distributed
from moseq.pipeline._distributed import layout as processes_layout
from moseq.pipeline._files import (
    CHECKPOINT_NAME,
    CSV_DIR,
    MODEL_NAME,
    REPORT_DIR,
    RESULTS_NAME,
    Checkpoint,
    FittedModel,
    load_checkpoint,
    replace_outputs,
    save_checkpoint,
    save_model,
)
from moseq.pipeline._progress import ProgressBar
from moseq.pipeline._project import _metadata, _resolve_config, build_model


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What `fit` returns: the final state, the trace of both stages (`log_joint`, `stage`),
    the batch that was fitted, the project folder and the paths written. Across processes,
    `batch` is this process's share and `state` holds global arrays with each process's
    padding rows (the checkpoint holds the recordings' state in order)."""

    state: dict
    trace: dict
    batch: Any
    project: Path
    paths: dict


def fit(config_or_project, resume: bool = False, *, overwrite: bool = False,
        progress: bool = True, export: bool = True, report: bool = True,
        callbacks: Sequence[Callable] = (), compile_cache: bool | None = None,
        coordinator: str | None = None, num_processes: int | None = None,
        process_id: int | None = None, heartbeat_timeout: int = HEARTBEAT_TIMEOUT
        ) -> FitResult:
    """Fit the keypoint-SLDS of a project: the AR-only stage, then the full model, with
    periodic atomic checkpoints; then save the model, the results and a report.

    Args:
        config_or_project: a project folder, a config file, or a `Config`.
        resume: continue from `checkpoint.npz` (refused when a key that changes the chain
            differs from the checkpoint's; `fitting.full_sweeps` may be raised to extend a
            finished fit). Without a checkpoint, a new fit starts.
        overwrite: start a new fit even though a checkpoint exists (it is replaced).
        progress: show the phases, then a progress bar, on stderr (`ProgressBar`).
        export: write `model.npz`, `results.h5` and `csv/`; report: write `report/`. The
            outputs of an earlier fit that this one does not write again (the CSV of a
            recording since dropped, `model.npz` with `export=False`) are removed, if
            unchanged since moseq wrote them (listed in `.moseq-outputs-fit.json`).
        callbacks: extra `fn(sweeps_done, state, trace)` called after each chunk (after the
            checkpoint); `trace` is that of the fit so far.
        compile_cache: use JAX's persistent compilation cache (`compilation_cache`); None:
            the config's `fitting.compile_cache`.
        coordinator, num_processes, process_id, heartbeat_timeout: fit across processes
            and hosts (`moseq.pipeline.initialize_distributed`): `"HOST:PORT"` of process 0,
            or `"auto"` under SLURM or Open MPI. Every process runs `fit` with the same
            project; each reads only its share of the files, process 0 writes every file
            (the project folder must be on a file system they share), and `state` and the
            callbacks' state are global arrays over every process's devices. The chain is
            that of one process, up to the order of floating-point sums.

    Returns:
        A `FitResult`.

    Raises:
        moseq.pipeline.WriteError: a file could not be written (its path and the reason);
            the files written before are intact, and `resume=True` continues from the last
            checkpoint.
        moseq.NumericalFailure: a sweep produced a NaN; the message names the sweep, the
            block and the last checkpoint, and what to change.
        moseq.pipeline.PeerFailure: across processes, another process died.
    """
    import jax

    if coordinator is not None:
        initialize_distributed(coordinator, num_processes, process_id,
                               heartbeat_timeout=heartbeat_timeout)
    layout = processes_layout()
    config, project = _resolve_config(config_or_project)
    checkpoint_path = project / CHECKPOINT_NAME
    if checkpoint_path.exists() and not (resume or overwrite):
        done = load_checkpoint(checkpoint_path).sweeps
        raise FileExistsError(
            f"{checkpoint_path} holds a fit at sweep {done}; pass resume=True (`moseq fit "
            "--resume`) to continue it, or overwrite=True (`--overwrite`) to start again.")
    fitting = config.fitting
    with ProgressBar(fitting.ar_sweeps + fitting.full_sweeps,
                     show=progress and layout.writer) as bar:
        if layout.writer:
            for path in remove_temporaries(project):
                bar.note(f"removed {path}, left by an interrupted write")
            check_writable(project)  # a read-only folder fails now, not after the data and init
        if resume and not checkpoint_path.exists():
            bar.note(f"No checkpoint at {checkpoint_path}; starting a new fit.")
        cache = fitting.compile_cache if compile_cache is None else compile_cache
        with (jax.enable_x64(fitting.float64), compilation_cache(cache) as cache_folder,
              across_processes(layout, checkpoint_path)):
            bar.note(cache_note(cache_folder))
            bar.phase(f"loading the data of {project}")
            batch, recordings = layout.load(config)
            frames = sum(recording.num_frames for recording in recordings.values())
            bar.phase_done(f"loaded {layout.share(recordings)}, {frames} frames")
            state, trace, model, data = _run_fit(config, batch, checkpoint_path, resume and
                                                 checkpoint_path.exists(), bar, callbacks,
                                                 layout)
            paths = {"checkpoint": str(checkpoint_path)}
            outputs = layout.outputs(model, data, state, batch, marginals=export)
            if outputs is not None:
                host_state, host_batch, marginals = outputs
                paths.update(_write_outputs(
                    config, project, host_batch, layout.fps(config, recordings), host_state,
                    trace, export=export, report=report, bar=bar, model=model,
                    marginals=marginals))
            layout.finish()
    return FitResult(state=state, trace=trace, batch=batch, project=project, paths=paths)


def _changed_keys(old: Mapping, new: Mapping) -> list[str]:
    old_flat, new_flat = _flat(old, RESUMABLE_KEYS), _flat(new, RESUMABLE_KEYS)
    return sorted(k for k in set(old_flat) | set(new_flat) if old_flat.get(k) != new_flat.get(k))


def _with_defaults(values: Mapping) -> Mapping:
    """A checkpoint's config with the options added since it was written at their defaults
    (as is, if it no longer reads as a config)."""
    try:
        return Config.from_dict(values, source="the checkpoint's config").to_dict()
    except ConfigError:
        return values


def _resumable(checkpoint_path: Path, config: Config, chain_hash: str,
               data_hashes: Sequence[str]) -> Checkpoint:
    """The checkpoint to resume from, refused when its config, data or sweep do not fit."""
    checkpoint = load_checkpoint(checkpoint_path)
    changed = [] if checkpoint.config_hash == chain_hash else _changed_keys(
        _with_defaults(checkpoint.config), config.to_dict())
    if changed:
        raise ConfigError(
            f"Cannot resume {checkpoint_path}: the config changed since it was written, in "
            f"{changed}; restore them, or start a new fit "
            f"with `--overwrite`. (Only {list(RESUMABLE_KEYS)} may change on resume.)")
    if checkpoint.data_hash not in data_hashes:
        raise ValueError(
            f"Cannot resume {checkpoint_path}: the data differ from those it was fitted on "
            "(files changed or added); restore them, or start a new fit with `--overwrite`.")
    fitting = config.fitting
    ar_sweeps, total = fitting.ar_sweeps, fitting.ar_sweeps + fitting.full_sweeps
    if checkpoint.sweeps > total:
        raise ConfigError(
            f"{checkpoint_path} is at sweep {checkpoint.sweeps}, beyond ar_sweeps + "
            f"full_sweeps = {total}; raise `fitting.full_sweeps` to at least "
            f"{checkpoint.sweeps - ar_sweeps}.")
    return checkpoint


def _run_fit(config: Config, batch, checkpoint_path: Path, resume: bool, bar: ProgressBar,
             callbacks: Sequence[Callable], layout):
    """`fit_staged` from the start or from the checkpoint, writing a checkpoint every
    `fitting.checkpoint_every` sweeps and at the end of each stage; returns the final state,
    the trace, the model and the data it was given."""
    fitting = config.fitting
    bar.phase("building the model" if resume else "initialising the model")
    model = layout.model(config, batch)
    data = layout.prepare(model, batch)
    _check_memory(model, data)  # of the global data, whichever process holds which rows
    ar_sweeps, total = fitting.ar_sweeps, fitting.ar_sweeps + fitting.full_sweeps
    chain_hash, data_hash = config.chain_hash(), layout.data_hash(batch)
    saved = {"sweeps": 0}

    def save(sweeps_done, state, trace):
        host_state = layout.to_host(model, data, state)
        if host_state is not None:
            save_checkpoint(checkpoint_path, Checkpoint(
                sweeps=int(sweeps_done), state=host_state, trace=trace,
                config=config.to_dict(), config_hash=chain_hash, data_hash=data_hash))
        saved["sweeps"] = sweeps_done

    if resume:
        checkpoint = _resumable(checkpoint_path, config, chain_hash,
                                (data_hash, *layout.older_data_hashes(batch)))
        done, trace = checkpoint.sweeps, checkpoint.trace
        state = layout.from_host(model, data, checkpoint.state)
        saved["sweeps"] = done
        bar.phase_done(f"resuming {checkpoint_path} at sweep {done}; built the model")
    else:
        state = staged_init(model, fitting.seed, data, ar_kappa=config.model.kappa_ar)
        done, trace = 0, concat_traces([])
        save(0, state, trace)
        bar.phase_done("initialised the model")

    def on_chunk(sweeps_done, chunk_state, trace):
        every = fitting.checkpoint_every
        stage_ended = sweeps_done in (ar_sweeps, total)
        if stage_ended or (every and sweeps_done // every > saved["sweeps"] // every):
            save(sweeps_done, chunk_state, trace)
        for callback in callbacks:
            callback(sweeps_done, chunk_state, trace)
        bar(sweeps_done, chunk_state, trace)

    try:
        state, trace = fit_staged(
            model, fitting.seed, data, ar_sweeps=ar_sweeps,
            full_sweeps=fitting.full_sweeps, ar_kappa=config.model.kappa_ar,
            full_kappa=config.model.kappa_full, state=state, start_sweep=done, trace=trace,
            chunk_size=fitting.chunk_size, callbacks=[on_chunk], stage_callbacks=[bar.begin],
            progress=False)
    except NumericalFailure as failure:
        raise NumericalFailure(_nan_advice(failure, checkpoint_path, saved["sweeps"], config),
                               failure.state, failure.trace) from None
    return layout.result(state), trace, model, data


FLICKER_FRAMES = 2
"""A fit whose median syllable lasts at most this many frames gets a `DataWarning`."""


def _warn_if_flickering(results, config: Config, fps: float | None) -> None:
    """Warn when the syllables flicker (median duration <= FLICKER_FRAMES frames), as the
    defaults do on a short clip whose aligned poses have few real dimensions."""
    import moseq.export
    from moseq.io import DataWarning
    from moseq.ops import get_durations

    durations = get_durations(moseq.export.syllable_stretches(results))
    median = float(np.median(durations)) if len(durations) else 0.0
    if median > FLICKER_FRAMES:
        return
    seconds = "" if fps is None else f" ({median / fps:.3g} s)"
    warnings.warn(DataWarning(
        f"The fitted syllables flicker: their median duration is {median:g} frame(s)"
        f"{seconds}, over {len(durations)} runs. The model is too large for these data: keep "
        f"`model.latent_dim` ({config.model.latent_dim}) to the PCA components above the "
        f"tracking noise (often 3-6 for head-fixed animals), lower `model.num_states` "
        f"({config.model.num_states}) for a short clip, or raise `model.kappa_full` "
        f"({config.model.kappa_full:g}); see docs/concepts/three_d.md."), stacklevel=3)


def _check_memory(model, data) -> None:
    """Refuse, before anything compiles, a fit whose estimated memory exceeds the device's
    (`moseq.core.memory.estimate_memory`), naming the remedies."""
    estimate = estimate_memory(model, data)
    if not estimate.fits:
        raise MemoryError(
            f"this fit needs about {estimate.describe()} available. Lower `fitting.chunk_frames`"
            " (the working memory of one chunk), cut long recordings with `data.seg_length`, "
            "lower `model.num_states`, or spread the recordings over more devices.")


def _nan_advice(failure: NumericalFailure, checkpoint_path: Path, saved: int,
                config: Config) -> str:
    """The failure's message (its sweep and block), the last checkpoint, and what to do."""
    remedies = "another `fitting.seed`"
    if not config.fitting.float64:
        remedies += " or `fitting.float64 = true` (round-off in float32 is a usual cause)"
    return (f"{failure} The fit stopped; {checkpoint_path} holds the fit after {saved} sweeps, "
            "its last checkpoint. Resuming from there (resume=True, `moseq fit --resume`) "
            "repeats the same chain, up to the same NaN; to go on, start a new fit "
            f"(overwrite=True, `--overwrite`) with {remedies}, or check the recordings' "
            "keypoints for the block named.")


def _write_outputs(config: Config, project: Path, batch, fps: float | None, state, trace, *,
                   export: bool, report: bool, bar: ProgressBar, model=None,
                   marginals=None) -> dict:
    """Write the outputs asked for, then remove the earlier fit's that were not written
    again (`replace_outputs`); returns their paths by name. Across processes, `batch` holds
    only the mask of the data, and `model` and the syllable `marginals` come computed."""
    import moseq.export
    import moseq.io
    import moseq.viz

    paths, written = {}, []
    if export or report:
        names = ["model.npz, results.h5, csv/"] * export + ["report/"] * report
        bar.phase(f"writing {' and '.join(names)}")
        model = build_model(config, batch) if model is None else model
        nlags = config.model.nlags
        if export and marginals is None:
            marginals = np.asarray(syllable_marginals(model, batch.data, state)[0])
        states = moseq.export.results_per_recording(state, batch.data, nlags,
                                                    marginals=marginals, batch=batch,
                                                    relabel=False)
        syllable_order = moseq.export.syllable_order_of(states, config.model.num_states)
        results = moseq.export.renumber(states, syllable_order)
        _warn_if_flickering(results, config, fps)
        if export:
            save_model(project / MODEL_NAME, FittedModel(
                params={k: np.asarray(v) for k, v in parameters(model, state).items()},
                config=config, keypoint_names=batch.keypoint_names, fps=fps,
                syllable_order=syllable_order))
            moseq.export.save_results_h5(project / RESULTS_NAME, results,
                                         _metadata(config, batch.keypoint_names, fps))
            written += [project / MODEL_NAME, project / RESULTS_NAME]
            written += write_folder(project / CSV_DIR, lambda folder: (
                moseq.export.save_results_csv(folder, results)))
            paths.update(model=str(project / MODEL_NAME), results=str(project / RESULTS_NAME),
                         csv=str(project / CSV_DIR))
        if report:
            keypoints = moseq.io.unbatch(batch.data["Y"], batch) if "Y" in batch.data else None
            written += write_folder(project / REPORT_DIR, lambda folder: moseq.viz.write_report(
                folder, results, config.model.num_states, nlags, trace=trace, fps=fps,
                keypoints=keypoints, vertical_axis=config.model.vertical_axis))
            paths["report"] = str(project / REPORT_DIR / "report.md")
        bar.phase_done(f"wrote {' and '.join(names)}")
    removed = replace_outputs(project, written, "fit")
    if removed:
        bar.note(f"removed {len(removed)} output(s) of the earlier fit that this one did not "
                 f"write: {', '.join(os.path.relpath(path, project) for path in removed)}")
    return paths
