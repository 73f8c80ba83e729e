"""moseq.pipeline: the config file, checkpoints, and the fit / resume / apply pipeline on a
real DeepLabCut clip (the slow tests share one module-scoped fit, so the sampler compiles
once)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import h5py
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


def test_progress_bar_names_the_stage_of_the_trace():
    stream = io.StringIO()
    bar = pipeline.ProgressBar(4, stream=stream)
    bar.begin("ar", 0)
    for done, stages in ((2, ["ar"] * 2), (4, ["ar"] * 2 + ["full"] * 2)):
        bar(done, {}, {"log_joint": -np.arange(done, dtype=float), "stage": np.array(stages)})
    lines = stream.getvalue().splitlines()
    assert [line.split()[2:4] for line in lines] == [["2/4", "ar"], ["4/4", "full"]]
    assert lines[-1].endswith("log joint -3")


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

    expected = pipeline.load_checkpoint(fitted / "checkpoint.npz")
    resumed = pipeline.load_checkpoint(project / "checkpoint.npz")
    assert resumed.sweeps == expected.sweeps == 10
    assert set(resumed.state) == set(expected.state)
    for name, value in expected.state.items():
        np.testing.assert_array_equal(resumed.state[name], value, err_msg=name)
        assert resumed.state[name].dtype == value.dtype
    for name, value in expected.trace.items():
        np.testing.assert_array_equal(resumed.trace[name], value, err_msg=name)
    a, _ = load_results_h5(project / "results.h5")
    b, _ = load_results_h5(fitted / "results.h5")
    for field, value in b["openfield_dlc_inference_example"].items():
        np.testing.assert_array_equal(a["openfield_dlc_inference_example"][field], value)


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
    with pytest.raises(ValueError, match="lacks"):
        pipeline.apply(fitted, [NWB], tmp_path / "x", progress=False)  # unmapped names
