"""The `moseq` command: argument parsing, init-project, errors (fitting itself is tested in
test_pipeline.py, through `moseq.cli.main`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from moseq import cli, pipeline

DLC_CSV = Path(__file__).parent / "data" / "dlc_openfield_mouse" / (
    "openfield_dlc_inference_example.csv")


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("init-project", "fit", "apply", "demo"):
        assert command in out


def test_python_dash_m_moseq():
    done = subprocess.run([sys.executable, "-m", "moseq", "fit", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--resume" in done.stdout and "CONFIG_OR_DATA" in done.stdout


def test_init_project_writes_a_config(tmp_path, capsys):
    project = tmp_path / "project"
    assert cli.main(["init-project", str(project), "--data", str(DLC_CSV), "--anterior", "snout",
                     "--posterior", "tailbase", "--set", "model.num_states=12",
                     "fitting.float64=true", "data.fps=30", 'data.format="deeplabcut"']) == 0
    assert "moseq fit" in capsys.readouterr().out
    config = pipeline.Config.load(project / "config.toml")
    assert config.model.num_states == 12 and config.fitting.float64 is True
    assert config.data.fps == 30.0 and config.data.format == "deeplabcut"
    assert config.data.paths == [str(DLC_CSV.resolve())]
    assert config.data.anterior == ["snout"] and config.data.posterior == ["tailbase"]
    # a second init refuses to overwrite
    assert cli.main(["init-project", str(project), "--data", "x", "--anterior", "a",
                     "--posterior", "b"]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_errors_are_explained(tmp_path, capsys):
    assert cli.main(["init-project", str(tmp_path / "p"), "--data", "x", "--anterior", "a",
                     "--posterior", "b", "--set", "model.num_state=3"]) == 1
    assert "num_states" in capsys.readouterr().err
    assert cli.main(["init-project", str(tmp_path / "p"), "--data", "x", "--anterior", "a",
                     "--posterior", "b", "--set", "nodot=3"]) == 1
    assert "SECTION.KEY=VALUE" in capsys.readouterr().err
    # data without --anterior / --posterior
    assert cli.main(["fit", str(DLC_CSV)]) == 1
    assert "--anterior" in capsys.readouterr().err
    assert cli.main(["fit", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
    # a config with an unknown key
    (tmp_path / "bad.toml").write_text(
        '[data]\npaths = ["x"]\nanterior = ["a"]\nposterior = ["b"]\n[fitting]\nsweeps = 3\n')
    assert cli.main(["fit", str(tmp_path / "bad.toml")]) == 1
    err = capsys.readouterr().err
    assert "fitting.sweeps" in err and "full_sweeps" in err
    assert cli.main(["apply", str(tmp_path), str(DLC_CSV)]) == 1
    assert "moseq fit" in capsys.readouterr().err


def test_write_errors_and_nans_are_one_line(tmp_path, monkeypatch, capsys):
    import errno

    from moseq import NumericalFailure

    def full_disk(*args, **kwargs):
        raise pipeline.WriteError(errno.ENOSPC, "No space left on device",
                                  str(tmp_path / "out" / "results.h5"))

    monkeypatch.setattr(pipeline, "apply", full_disk)
    assert cli.main(["apply", str(tmp_path), str(DLC_CSV)]) == 1
    assert capsys.readouterr().err == (
        f"moseq apply: error: cannot write {tmp_path / 'out' / 'results.h5'}: No space left on "
        "device; the files written before are intact. Free space on that disk, then run "
        "again.\n")

    def nan(*args, **kwargs):
        raise NumericalFailure("sweep 7: KalmanLatents produced a NaN ...", {}, {})

    monkeypatch.setattr(pipeline, "fit", nan)
    pipeline.init_project(tmp_path / "p", [str(DLC_CSV)], ["snout"], ["tailbase"])
    assert cli.main(["fit", str(tmp_path / "p")]) == 1
    assert capsys.readouterr().err == (
        "moseq fit: error: sweep 7: KalmanLatents produced a NaN ...\n")


def test_fit_data_creates_a_project(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "fit", lambda target, **kwargs: calls.append(
        (target, kwargs)) or pipeline.FitResult({}, {}, None, Path(target), {}))
    project = tmp_path / "proj"
    assert cli.main(["fit", str(DLC_CSV), "--anterior", "snout", "--posterior", "tailbase",
                     "--project", str(project), "--set", "fitting.ar_sweeps=7",
                     "--no-report"]) == 0
    assert calls == [(project, {"resume": False, "overwrite": False, "progress": True,
                                "report": False, "compile_cache": None})]
    assert pipeline.Config.load(project).fitting.ar_sweeps == 7
    # the same again refuses to replace that project's config, unless resuming
    assert cli.main(["fit", str(DLC_CSV), "--anterior", "snout", "--posterior", "tailbase",
                     "--project", str(project)]) == 1
    assert cli.main(["fit", str(DLC_CSV), "--anterior", "snout", "--posterior", "tailbase",
                     "--project", str(project), "--resume"]) == 0
    assert pipeline.Config.load(project).fitting.ar_sweeps == 7


def test_fit_across_processes_passes_the_flags_and_needs_a_project(tmp_path, monkeypatch,
                                                                    capsys):
    calls = []
    monkeypatch.setattr(pipeline, "fit", lambda target, **kwargs: calls.append(
        (target, kwargs)) or pipeline.FitResult({}, {}, None, Path(target), {}))
    project = tmp_path / "proj"
    pipeline.init_project(project, [str(DLC_CSV)], ["snout"], ["tailbase"],
                          model={"latent_dim": 3})
    assert cli.main(["fit", str(project), "--coordinator", "10.0.0.1:1234", "--num-processes",
                     "4", "--process-id", "3", "--heartbeat-timeout", "30"]) == 0
    assert calls[0][1] | {"resume": None} == {
        "resume": None, "overwrite": False, "progress": True, "report": True,
        "coordinator": "10.0.0.1:1234", "num_processes": 4, "process_id": 3,
        "heartbeat_timeout": 30, "compile_cache": None}
    assert cli.main(["fit", str(DLC_CSV), "--anterior", "snout", "--posterior", "tailbase",
                     "--coordinator", "auto"]) == 1
    assert "create the project first" in capsys.readouterr().err


def test_no_compile_cache_option(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "fit", lambda target, **kwargs: calls.append(kwargs) or
                        pipeline.FitResult({}, {}, None, Path(target), {}))
    monkeypatch.setattr(pipeline, "apply", lambda *args, **kwargs: calls.append(kwargs) or
                        pipeline.ApplyResult({}, None, None, {}))
    pipeline.init_project(tmp_path, [str(DLC_CSV)], ["snout"], ["tailbase"],
                          model={"latent_dim": 2})
    assert cli.main(["fit", str(tmp_path), "--no-compile-cache"]) == 0
    assert cli.main(["apply", str(tmp_path), str(DLC_CSV), "--no-compile-cache"]) == 0
    assert [kwargs["compile_cache"] for kwargs in calls] == [False, False]


def test_keypoints_option():
    assert cli._parse_keypoints(None) is None
    assert cli._parse_keypoints("a, b,c") == ["a", "b", "c"]
    assert cli._parse_keypoints("x=a,y=b") == {"x": "a", "y": "b"}
    with pytest.raises(ValueError, match="either"):
        cli._parse_keypoints("x=a,b")


def test_demo_runs_moseq_demo(monkeypatch):
    import moseq.demo

    calls = []
    monkeypatch.setattr(moseq.demo, "main", lambda: calls.append(1))
    assert cli.main(["demo"]) == 0
    assert calls == [1]
