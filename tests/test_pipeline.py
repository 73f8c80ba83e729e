"""moseq.pipeline: the config file, checkpoints, the progress display, and the fit / resume /
apply pipeline on a real DeepLabCut clip, with its faults (SIGKILL of `python -m moseq fit`,
a NaN, refits); the slow tests share one module-scoped fit, so the sampler compiles once."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import jax
import numpy as np
import pytest

from moseq import cli, pipeline
from moseq.export import FIELDS, load_results_h5
from moseq.pipeline import Checkpoint, Config, ConfigError
from moseq.pipeline._files import _data_hash

DLC = Path(__file__).parent / "data" / "dlc_openfield_mouse"
DLC_CSV = DLC / "openfield_dlc_inference_example.csv"
NWB = DLC / "sample_nwb_.nwb"
TINY = {"model": {"latent_dim": 3, "num_states": 10, "nlags": 2},
        "fitting": {"ar_sweeps": 4, "full_sweeps": 6, "chunk_size": 2, "checkpoint_every": 2,
                    "float64": True, "seed": 3},
        "apply": {"num_sweeps": 2}}


def _project(folder: Path, **overrides) -> Path:
    sections = {name: {**values, **overrides.get(name, {})} for name, values in TINY.items()}
    pipeline.init_project(folder, [str(DLC_CSV)], ["snout"], ["tailbase"], **sections)
    return folder


# ---- config -------------------------------------------------------------------------------

def test_config_round_trip(tmp_path):
    config = pipeline.init_project(tmp_path / "p", [DLC_CSV], "snout",
                                   ["tailbase", "leftear"],
                                   model={"num_states": 7, "kappa_full": 123.5, "latent_dim": 3},
                                   data={"fps": 30, "keypoints": ["snout", "tailbase", "leftear"]})
    text = (tmp_path / "p" / "config.toml").read_text()
    assert "# keypoints" not in text and "# individual = " in text   # unset: commented out
    assert all(len(line) <= 100 for line in text.splitlines())
    loaded = Config.load(tmp_path / "p")
    assert loaded == config and loaded.to_dict() == config.to_dict()
    assert loaded.model.num_states == 7 and loaded.model.kappa_full == 123.5
    assert loaded.data.fps == 30.0 and isinstance(loaded.data.fps, float)
    assert loaded.data.anterior == ["snout"] and loaded.data.individual is None
    assert Config.from_toml(loaded.to_toml()) == loaded
    # every option is written out
    for section in loaded.to_dict().values():
        for key in section:
            assert f"{key} = " in text
    # relative data paths resolve against the config's folder
    config = Config.from_dict({"data": {"paths": ["x.csv"], "anterior": "a", "posterior": "b"}},
                              base_dir=tmp_path)
    assert config.data_paths() == [str(tmp_path / "x.csv")]
    assert config.model_kwargs()["kappa"] == config.model.kappa_full


def test_config_errors_name_the_keys(tmp_path):
    base = {"data": {"paths": ["x"], "anterior": ["a"], "posterior": ["b"]}}
    with pytest.raises(ConfigError, match=r"data.anterior.*data.posterior"):
        Config.from_dict({"data": {"paths": ["x"]}})
    with pytest.raises(ConfigError, match=r"model.num_state'\].*num_states.*latent_dim"):
        Config.from_dict({**base, "model": {"num_state": 5}})
    with pytest.raises(ConfigError, match=r"unknown section.*'fiting'.*'fitting'"):
        Config.from_dict({**base, "fiting": {}})
    with pytest.raises(ConfigError, match="model.nlags` must be an integer"):
        Config.from_dict({**base, "model": {"nlags": "three"}})
    with pytest.raises(ConfigError, match="fitting.chunk_size` must be > 0"):
        Config.from_dict({**base, "fitting": {"chunk_size": 0}})
    with pytest.raises(ConfigError, match=r"model.vertical_axis` must be 0, 1 or 2"):
        Config.from_dict({**base, "model": {"vertical_axis": 3}})
    with pytest.raises(ConfigError, match="data.format` must be one of"):
        Config.from_dict({**base, "data": {**base["data"], "format": "dlc"}})
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_toml("[data\n")
    with pytest.raises(ConfigError, match="init-project"):
        Config.load(tmp_path)
    pipeline.init_project(tmp_path / "p", [DLC_CSV], "snout", "tailbase", model={"latent_dim": 3})
    with pytest.raises(FileExistsError, match="overwrite"):
        pipeline.init_project(tmp_path / "p", [DLC_CSV], "snout", "tailbase")


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    first = Checkpoint(sweeps=2, state={"z": np.arange(3)}, trace={"log_joint": np.ones(2)},
                       config={"a": {"b": 1}}, config_hash="h", data_hash="d")
    pipeline.save_checkpoint(path, first)

    def crash(file, **arrays):
        file.write(b"half a file")
        raise KeyboardInterrupt  # killed in the middle of a write

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        pipeline.save_checkpoint(path, Checkpoint(4, {}, {}, {}, "h", "d"))
    monkeypatch.undo()
    loaded = pipeline.load_checkpoint(path)
    assert loaded.sweeps == 2 and loaded.config == first.config
    np.testing.assert_array_equal(loaded.state["z"], first.state["z"])
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # no temporary file left behind


def test_resume_refuses_a_changed_config_or_data(tmp_path):
    project = _project(tmp_path / "p")
    config = Config.load(project)
    batch, _ = pipeline.load_data(config)
    old = config.to_dict()
    old["model"]["kappa_full"] = 1.0
    old["fitting"]["seed"] = 99
    old["fitting"]["full_sweeps"] = 1  # may change on resume: not named
    pipeline.save_checkpoint(project / "checkpoint.npz", Checkpoint(
        2, {}, {}, old, Config.from_dict(old).chain_hash(), _data_hash(batch)))
    with pytest.raises(FileExistsError, match="sweep 2.*--resume"):
        pipeline.fit(project)
    with pytest.raises(ConfigError) as error:
        pipeline.fit(project, resume=True)
    assert "['fitting.seed', 'model.kappa_full']" in str(error.value)
    pipeline.save_checkpoint(project / "checkpoint.npz", Checkpoint(
        2, {}, {}, config.to_dict(), config.chain_hash(), "another data hash"))
    with pytest.raises(ValueError, match="data differ"):
        pipeline.fit(project, resume=True)
    # A checkpoint written before an option existed reads it at its default: the config check
    # passes (and the data check is next).
    older = config.to_dict()
    del older["model"]["vertical_axis"]
    pipeline.save_checkpoint(project / "checkpoint.npz", Checkpoint(
        2, {}, {}, older, "the hash of an older version", "another data hash"))
    with pytest.raises(ValueError, match="data differ"):
        pipeline.fit(project, resume=True)


def _staged_run(bar: pipeline.ProgressBar, clock: list) -> None:
    """Feed `bar` a staged run of 6 + 6 sweeps in chunks of 2 on a fake clock: each stage's
    first chunk compiles for 20 s (ar) or 30 s (full), then ar runs 2 and full 1 sweeps/s."""
    def trace(done):
        return {"log_joint": -10.0 - np.arange(done),
                "stage": np.array(["ar"] * min(done, 6) + ["full"] * max(done - 6, 0))}

    bar.phase("loading the data")
    clock[0] += 1.5
    bar.phase_done("loaded 1 recording(s)")
    for stage, start, compiling, seconds_per_sweep in (("ar", 0, 20, 0.5), ("full", 6, 30, 1)):
        bar.begin(stage, start, start + 6)
        for done in range(start + 2, start + 7, 2):
            clock[0] += 2 * seconds_per_sweep + (compiling if done == start + 2 else 0)
            bar(done, {}, trace(done))


def test_progress_bar_steady_rate_eta_phases_and_stage_marks():
    """The rate counts from the end of each stage's first chunk (which compiles), the ETA is
    the stage's, the compilation time is said, and the stage switch is marked by the final
    log joint of the ar stage and the first of the full stage."""
    stream, clock = io.StringIO(), [0.0]
    _staged_run(pipeline.ProgressBar(12, stream, clock=lambda: clock[0]), clock)
    assert stream.getvalue().splitlines() == [
        "loading the data ...",
        "loaded 1 recording(s) in 1.5 s",
        "ar stage (sweeps 1-6): compiling ...",
        "  ar sweep  2/12  -- sweeps/s  ETA --  log joint -11",
        "ar stage compiled in 20 s",  # 21 s for the first chunk, less 2 sweeps at 2 sweeps/s
        "  ar sweep  4/12  2.00 sweeps/s  ar ends in 1.0 s  log joint -13",
        "  ar sweep  6/12  2.00 sweeps/s  ar ends in 0.0 s  log joint -15",
        "ar stage done at sweep 6 in 23 s (2.00 sweeps/s once compiled): final log joint -15",
        "full stage (sweeps 7-12): compiling ...",
        "full stage: first log joint -16 (sweep 7)",
        "full sweep  8/12  -- sweeps/s  ETA --  log joint -17",
        "full stage compiled in 30 s",
        "full sweep 10/12  1.00 sweeps/s  ETA 2.0 s  log joint -19",
        "full sweep 12/12  1.00 sweeps/s  ETA 0.0 s  log joint -21",
        "full stage done at sweep 12 in 36 s (1.00 sweeps/s once compiled): final log joint -21",
    ]


def _screen(text: str) -> list[str]:
    """The lines a terminal shows after printing `text` (a carriage return goes back to the
    start of the line, and what follows overwrites it)."""
    lines, column = [""], 0
    for char in text:
        if char == "\n":
            lines.append("")
            column = 0
        elif char == "\r":
            column = 0
        else:
            lines[-1] = lines[-1][:column] + char + lines[-1][column + 1:]
            column += 1
    return [line.rstrip() for line in lines]


def test_progress_bar_on_a_terminal_and_silenced():
    """On a terminal the status is one line redrawn in place, below the permanent lines."""
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream, clock = Terminal(), [0.0]
    with pipeline.ProgressBar(12, stream, clock=lambda: clock[0]) as bar:
        _staged_run(bar, clock)
    log, clock = io.StringIO(), [0.0]
    _staged_run(pipeline.ProgressBar(12, log, clock=lambda: clock[0]), clock)
    permanent = [line for line in log.getvalue().splitlines()
                 if not line.lstrip().startswith(("ar sweep", "full sweep"))]
    assert _screen(stream.getvalue()) == [
        *permanent,
        "full [####################] 12/12  1.00 sweeps/s  ETA 0.0 s  log joint -21", ""]
    silent = io.StringIO()
    _staged_run(pipeline.ProgressBar(12, silent, show=False, clock=lambda: clock[0]), clock)
    assert silent.getvalue() == ""


def test_precision_is_the_configs(tmp_path):
    project = _project(tmp_path / "p", fitting={"float64": False})
    batch, recordings = pipeline.load_data(Config.load(project))
    assert batch.data["Y"].dtype == np.float32 and batch.data["conf"].dtype == np.float32
    assert list(recordings) == ["openfield_dlc_inference_example"]
    assert batch.keypoint_names == ("snout", "leftear", "rightear", "tailbase")


# ---- fit, resume, apply on a real clip -----------------------------------------------------

@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """`moseq fit` on the DLC clip, uninterrupted, through the CLI."""
    project = _project(tmp_path_factory.mktemp("fit") / "project")
    assert cli.main(["fit", str(project), "--no-progress"]) == 0
    return project


@pytest.mark.slow
def test_fit_writes_the_project(fitted):
    for name in ("checkpoint.npz", "model.npz", "results.h5", "csv", "report/report.md"):
        assert (fitted / name).exists(), name
    checkpoint = pipeline.load_checkpoint(fitted / "checkpoint.npz")
    assert checkpoint.sweeps == 10
    assert list(checkpoint.trace["stage"]) == ["ar"] * 4 + ["full"] * 6
    assert np.all(np.isfinite(checkpoint.trace["log_joint"]))
    assert checkpoint.state["x"].dtype == np.float64
    model = pipeline.load_model(fitted)
    assert model.keypoint_names == ("snout", "leftear", "rightear", "tailbase")
    assert set(model.params) == {"betas", "pi", "Ab", "Q", "Cd", "sigmasq"}
    assert model.config == Config.load(fitted)


@pytest.mark.slow
def test_fit_is_fit_staged(fitted):
    """The pipeline's chain is `fit_staged`'s, with the same keys and sweep numbers."""
    from moseq.models.fitting import fit_staged

    config = Config.load(fitted)
    batch, _ = pipeline.load_data(config)
    state, trace = fit_staged(pipeline.build_model(config, batch), config.fitting.seed,
                              batch.data, ar_sweeps=4, full_sweeps=6,
                              ar_kappa=config.model.kappa_ar, full_kappa=config.model.kappa_full,
                              chunk_size=2, progress=False)
    checkpoint = pipeline.load_checkpoint(fitted / "checkpoint.npz")
    for name, value in state.items():
        np.testing.assert_array_equal(checkpoint.state[name], value, err_msg=name)
    np.testing.assert_array_equal(checkpoint.trace["log_joint"], trace["log_joint"])
    np.testing.assert_array_equal(checkpoint.trace["stage"], trace["stage"])


def _assert_same_fit(project: Path, expected: Path) -> None:
    """`project`'s checkpoint and results are bit for bit those of `expected`."""
    resumed = pipeline.load_checkpoint(project / "checkpoint.npz")
    reference = pipeline.load_checkpoint(expected / "checkpoint.npz")
    assert resumed.sweeps == reference.sweeps == 10
    assert set(resumed.state) == set(reference.state)
    for name, value in reference.state.items():
        np.testing.assert_array_equal(resumed.state[name], value, err_msg=name)
        assert resumed.state[name].dtype == value.dtype
    for name, value in reference.trace.items():
        np.testing.assert_array_equal(resumed.trace[name], value, err_msg=name)
    a, _ = load_results_h5(project / "results.h5")
    b, _ = load_results_h5(expected / "results.h5")
    for field, value in b["openfield_dlc_inference_example"].items():
        np.testing.assert_array_equal(a["openfield_dlc_inference_example"][field], value)


class Killed(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint_every, killed_at, resumed_from",
                         [(2, 2, 2),     # in the AR-only stage, right after a checkpoint
                          (4, 8, 8),     # in the full stage
                          (3, 8, 6)])    # 7 and 8 lost: resumed from the last checkpoint
def test_resume_continues_the_same_chain(fitted, tmp_path, checkpoint_every, killed_at,
                                         resumed_from):
    project = _project(tmp_path / "p", fitting={"checkpoint_every": checkpoint_every})

    def kill(sweeps_done, state, trace):
        if sweeps_done == killed_at:
            raise Killed

    with pytest.raises(Killed):
        pipeline.fit(project, progress=False, callbacks=[kill])
    interrupted = pipeline.load_checkpoint(project / "checkpoint.npz")
    assert interrupted.sweeps == resumed_from
    assert len(interrupted.trace["log_joint"]) == resumed_from
    assert not (project / "results.h5").exists()
    # checkpoint_every may differ on resume
    assert cli.main(["fit", str(project), "--resume", "--no-progress", "--no-report"]) == 0
    _assert_same_fit(project, fitted)


@pytest.mark.slow
def test_results_have_the_documented_layout(fitted):
    results, metadata = load_results_h5(fitted / "results.h5")
    assert list(results) == ["openfield_dlc_inference_example"]
    table = results["openfield_dlc_inference_example"]
    assert set(table) == set(FIELDS)
    frames = table["frame"]
    assert frames.ndim == 1 and len(frames) <= 2330 and frames[0] == 0
    assert table["syllable"].shape == frames.shape and table["syllable"].max() < 10
    assert np.all((table["syllable_probability"] >= 0) & (table["syllable_probability"] <= 1))
    assert table["latent_state"].shape == (len(frames), 3)
    assert table["centroid"].shape == (len(frames), 2)
    assert table["heading"].shape == frames.shape
    assert metadata["keypoint_names"] == ["snout", "leftear", "rightear", "tailbase"]
    assert metadata["config"]["model"]["num_states"] == 10
    assert metadata["format_version"] == 1
    with h5py.File(fitted / "results.h5") as file:
        assert file.attrs["format"] == "moseq-results"
    header = (fitted / "csv" / "openfield_dlc_inference_example.csv").read_text().splitlines()
    assert header[0] == ("frame,syllable,syllable_probability,latent_state_0,latent_state_1,"
                         "latent_state_2,centroid_x,centroid_y,heading")
    assert len(header) == len(frames) + 1


@pytest.mark.slow
def test_apply_to_the_nwb_copy(fitted, tmp_path):
    """The NWB file holds the same clip with keypoints named ind1_*, mapped onto the model's
    with --keypoints."""
    output = tmp_path / "applied"
    mapping = "ind1_snout=snout,ind1_leftear=leftear,ind1_rightear=rightear,ind1_tailbase=tailbase"
    assert cli.main(["apply", str(fitted), str(NWB), "--output", str(output), "--keypoints",
                     mapping, "--no-progress"]) == 0
    applied, metadata = load_results_h5(output / "results.h5")
    fitted_results, _ = load_results_h5(fitted / "results.h5")
    table, reference = applied["sample_nwb_"], fitted_results["openfield_dlc_inference_example"]
    assert set(table) == set(FIELDS)
    np.testing.assert_array_equal(table["frame"], reference["frame"])
    assert np.all(np.isfinite(table["latent_state"]))
    assert metadata["apply_sweeps"] == 2
    assert (output / "csv" / "sample_nwb_.csv").exists()
    # The fitted clip keeps the fit's numbers: no relabelling matches them better.
    direct, best = _agreement(table["syllable"], reference["syllable"], num_states=10)
    assert direct >= best - 0.02 and direct > 0.3, (direct, best)
    with pytest.raises(ValueError, match="lacks"):
        pipeline.apply(fitted, [NWB], tmp_path / "x", progress=False)  # unmapped names


def _kill_when(command: list[str], ready, what: str, timeout: float = 180) -> None:
    """Start `command`, poll `ready()` every 20 ms and SIGKILL the process once it holds."""
    env = dict(os.environ)  # the suite's XLA_FLAGS (8 CPU devices), and its compilation cache
    if jax.config.jax_compilation_cache_dir:
        env.update(JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.2")
    process = subprocess.Popen([sys.executable, "-m", "moseq", *command], env=env,
                               cwd=Path(__file__).parents[1], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"`moseq {' '.join(command)}` ended or timed out before {what}: "
                            f"{process.communicate()[1][-2000:]}")
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL, f"finished before the kill {what}"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.mark.slow
def test_sigkill_then_resume_is_the_uninterrupted_fit(fitted, tmp_path):
    """`python -m moseq fit` killed with SIGKILL in a stage, then (resumed) after its last
    checkpoint, while it computes and writes its outputs, and resumed again: the fit and
    results of an uninterrupted run."""
    project = _project(tmp_path / "p")
    checkpoint = project / "checkpoint.npz"

    def checkpointed(sweeps):
        try:
            return pipeline.load_checkpoint(checkpoint).sweeps >= sweeps
        except (FileNotFoundError, ValueError):
            return False

    fit = ["fit", str(project), "--no-progress", "--no-report"]
    _kill_when(fit, lambda: checkpointed(2), "the checkpoint at sweep 2")
    assert pipeline.load_checkpoint(checkpoint).sweeps < 10
    _kill_when([*fit, "--resume"], lambda: checkpointed(10), "the last checkpoint")
    assert not (project / "csv").exists()
    assert cli.main([*fit, "--resume"]) == 0
    _assert_same_fit(project, fitted)
    assert not list(project.glob(".moseq-*.tmp"))  # the killed writes' files are cleaned up


@pytest.mark.slow
def test_a_nan_is_reported_with_its_sweep_block_and_checkpoint(fitted, tmp_path, monkeypatch,
                                                                  capsys):
    import jax.numpy as jnp

    from moseq.core import NumericalFailure, gibbs, scheduler

    compiled, calls = scheduler._compiled_resample_block, []

    def poisoned(block, key, data, state, **kwargs):
        updates, flag = compiled(block, key, data, state, **kwargs)
        if block.name == "ARDynamics":
            calls.append(block.name)
            if len(calls) == 6:  # sweep 5, the second of the full stage
                updates = {k: jnp.full_like(v, jnp.nan) for k, v in updates.items()}
                flag = gibbs.nonfinite(updates)
        return updates, flag

    monkeypatch.setattr(scheduler, "_compiled_resample_block", poisoned)
    project = _project(tmp_path / "p")
    with pytest.raises(NumericalFailure) as failure:
        pipeline.fit(project, progress=False, report=False)
    message = str(failure.value)
    assert "sweep 5: ARDynamics" in message
    assert f"{project / 'checkpoint.npz'} holds the fit after 4 sweeps" in message
    assert "--overwrite" in message and "fitting.seed" in message
    assert pipeline.load_checkpoint(project / "checkpoint.npz").sweeps == 4
    assert not (project / "model.npz").exists()
    calls.clear()
    assert cli.main(["fit", str(project), "--overwrite", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("moseq fit: error: sweep 5: ARDynamics") and err.count("\n") == 1


@pytest.mark.slow
def test_progress_and_a_refit_replace_the_outputs(fitted, tmp_path, capsys):
    """A fit says each phase, the compilation and the stage switch; a refit with other
    recordings removes the outputs of the dropped ones, never a file moseq did not write."""
    for name in ("a", "b"):
        (tmp_path / f"{name}.csv").write_bytes(DLC_CSV.read_bytes())
    project = tmp_path / "p"
    sections = {name: {**values} for name, values in TINY.items()}
    pipeline.init_project(project, [str(tmp_path / "a.csv")], ["snout"], ["tailbase"],
                          **sections)
    result = pipeline.fit(project, report=False)
    err = capsys.readouterr().err
    log_joint = result.trace["log_joint"]
    for line in ("loading the data of", "loaded 1 recording(s), 2330 frames in",
                 "initialised the model in", "ar stage (sweeps 1-4): compiling ...",
                 "ar stage compiled in", f"final log joint {log_joint[3]:.6g}\n",
                 "full stage (sweeps 5-10): compiling ...",
                 f"full stage: first log joint {log_joint[4]:.6g} (sweep 5)",
                 "full stage done at sweep 10 in", "wrote model.npz, results.h5, csv/ in"):
        assert line in err, line
    assert err.index("ar stage compiled") < err.index("ar stage done") < err.index(
        "full stage (") < err.index("full stage compiled") < err.index("full stage done")
    assert sorted(os.listdir(project / "csv")) == ["a.csv"]

    (project / "csv" / "notes.csv").write_text("mine\n")  # a user's file beside the outputs
    config = Config.load(project).to_dict()
    config["data"]["paths"] = [str(tmp_path / "b.csv")]
    Config.from_dict(config).save(project / "config.toml")
    pipeline.fit(project, overwrite=True, progress=False, report=False)
    assert capsys.readouterr().err == ""  # progress=False prints nothing
    assert sorted(os.listdir(project / "csv")) == ["b.csv", "notes.csv"]
    assert list(load_results_h5(project / "results.h5")[0]) == ["b"]
    # a fit that exports nothing leaves no outputs of the earlier one
    pipeline.fit(project, resume=True, progress=False, export=False, report=False)
    assert not (project / "model.npz").exists() and not (project / "results.h5").exists()
    assert sorted(os.listdir(project / "csv")) == ["notes.csv"]


def _agreement(a, b, num_states):
    """The fraction of frames where labels `a` and `b` agree, as they are and under the best
    one-to-one relabelling of `a`."""
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((num_states, num_states))
    np.add.at(counts, (a, b), 1)
    rows, columns = linear_sum_assignment(-counts)
    return np.mean(a == b), counts[rows, columns].sum() / len(a)


@pytest.mark.slow
def test_syllable_numbers_belong_to_the_fitted_model(fitted, tmp_path):
    """model.npz fixes the numbering by frequency at the end of the fit; the fit's results
    and an apply to part of the clip, whose frequencies differ, carry it."""
    from moseq import export

    order = pipeline.load_model(fitted).syllable_order
    batch, _ = pipeline.load_data(Config.load(fitted))
    final = pipeline.load_checkpoint(fitted / "checkpoint.npz").state
    states = export.results_per_recording(final, batch.data, 2, batch=batch, relabel=False)
    np.testing.assert_array_equal(order, export.syllable_order_of(states, 10))
    fit_results, _ = load_results_h5(fitted / "results.h5")
    name = "openfield_dlc_inference_example"
    np.testing.assert_array_equal(order[fit_results[name]["syllable"]], states[name]["syllable"])

    lines = DLC_CSV.read_text().splitlines(keepends=True)
    (tmp_path / "first_600.csv").write_text("".join(lines[:3 + 600]))  # 3 header rows
    applied = pipeline.apply(fitted, [tmp_path / "first_600.csv"], tmp_path / "out",
                             progress=False)
    applied_states = export.results_per_recording(
        applied.applied.state, applied.batch.data, 2, batch=applied.batch, relabel=False)
    table, new_states = applied.results["first_600"], applied_states["first_600"]
    assert not np.array_equal(export.syllable_order_of(applied_states, 10), order)
    np.testing.assert_array_equal(order[table["syllable"]], new_states["syllable"])
    saved, _ = load_results_h5(tmp_path / "out" / "results.h5")
    np.testing.assert_array_equal(saved["first_600"]["syllable"], table["syllable"])
    reference = fit_results[name]["syllable"][np.searchsorted(fit_results[name]["frame"],
                                                              table["frame"])]
    direct, best = _agreement(table["syllable"], reference, num_states=10)
    assert direct >= best - 0.02 and direct > 0.3, (direct, best)


def test_flickering_syllables_get_a_warning_naming_the_remedies():
    from moseq.io import DataWarning
    from moseq.pipeline._fit import _warn_if_flickering

    config = Config.from_dict({"data": {"paths": ["x"], "anterior": ["a"], "posterior": ["b"]}})
    frames = np.arange(40)
    flicker = {"r": {"frame": frames, "syllable": frames % 2}}
    with pytest.warns(DataWarning, match=r"median duration is 1 frame.*\(0.0333 s\).*40 runs.*"
                      r"latent_dim.*num_states.*kappa_full"):
        _warn_if_flickering(flicker, config, fps=30.0)
    # Runs of 4 frames are syllables; runs that a gap cuts to 1 frame are counted as such.
    steady = {"r": {"frame": frames, "syllable": frames // 4 % 2}}
    gapped = {"r": {"frame": np.arange(0, 80, 2), "syllable": frames // 4 % 2}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_flickering(steady, config, fps=None)
    with pytest.warns(DataWarning, match="median duration is 1 frame"):
        _warn_if_flickering(gapped, config, fps=None)
