"""Faults of the file layer (`moseq._atomic`, `replace_outputs`): a write that fails names
its file and leaves the earlier ones intact, a killed write's temporary files are cleaned up,
new files follow the umask, and stale outputs go while other files stay. (Killing a real
`moseq fit` with SIGKILL and a NaN in a sweep are tested in test_pipeline.py, on its fit.)"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from moseq import _atomic, cli, pipeline
from moseq.pipeline import Checkpoint, WriteError
from moseq.pipeline._files import replace_outputs

DLC_CSV = Path(__file__).parent / "data" / "dlc_openfield_mouse" / (
    "openfield_dlc_inference_example.csv")


def _checkpoint(sweeps: int) -> Checkpoint:
    return Checkpoint(sweeps=sweeps, state={"z": np.arange(3)}, trace={"log_joint": np.ones(2)},
                      config={}, config_hash="h", data_hash="d")


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    pipeline.save_checkpoint(path, _checkpoint(2))

    def full_disk(file, **arrays):
        file.write(b"part of a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(WriteError) as raised:
        pipeline.save_checkpoint(path, _checkpoint(4))
    error = raised.value
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert error.filename == str(path)
    assert str(error) == (f"cannot write {path}: No space left on device; the files written "
                          "before are intact. Free space on that disk, then run again.")
    assert error.__cause__ is None and error.__suppress_context__  # one error, not a chain
    assert str(pickle.loads(pickle.dumps(error))) == str(error)  # e.g. from a process pool
    monkeypatch.undo()
    assert pipeline.load_checkpoint(path).sweeps == 2
    assert os.listdir(tmp_path) == ["checkpoint.npz"]


def _refuse_writes(folder: Path, monkeypatch) -> None:
    """Make `folder` read-only; as root (where permissions do not stop writes), make file
    creation fail as it would."""
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return
    (folder / "probe").unlink()

    def refused(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(_atomic, "_create_file", refused)


def test_a_read_only_project_fails_at_once_in_one_line(tmp_path, monkeypatch, capsys):
    project = tmp_path / "p"
    pipeline.init_project(project, [str(DLC_CSV)], ["snout"], ["tailbase"],
                          model={"latent_dim": 3})
    config = (project / "config.toml").read_bytes()
    _refuse_writes(project, monkeypatch)
    try:
        with pytest.raises(WriteError, match=f"cannot write {project}: Permission denied"):
            pipeline.fit(project, progress=False)
        assert cli.main(["fit", str(project)]) == 1
    finally:
        project.chmod(0o755)
    err = capsys.readouterr().err
    assert err.startswith(f"moseq fit: error: cannot write {project}: Permission denied")
    assert f"`moseq fit {project} --resume`" in err and err.count("\n") == 1
    assert sorted(os.listdir(project)) == ["config.toml"]
    assert (project / "config.toml").read_bytes() == config


def test_temporaries_of_a_killed_write_are_removed_at_the_next_run(tmp_path):
    project, clip = tmp_path / "p", tmp_path / "clip.csv"
    shutil.copy(DLC_CSV, clip)
    pipeline.init_project(project, [str(clip)], ["snout"], ["tailbase"],
                          model={"latent_dim": 3})
    clip.unlink()
    (project / ".moseq-3f2a.tmp").write_bytes(b"half a checkpoint")
    (project / ".moseq-77c1.h5.tmp").write_bytes(b"half a results file")
    (project / ".moseq-9e0d.tmp").mkdir()  # a folder of CSVs being written
    (project / ".moseq-9e0d.tmp" / "a.csv").write_text("frame\n")
    for name in ("notes.tmp", ".moseq-notes.txt"):  # not moseq's temporaries
        (project / name).write_text("mine")
    with pytest.raises(FileNotFoundError):  # the data are missing; the clean-up came first
        pipeline.fit(project, progress=False)
    assert sorted(os.listdir(project)) == [".moseq-notes.txt", "config.toml", "notes.tmp"]


def test_new_files_follow_the_umask(tmp_path):
    def mode(path):
        return stat.S_IMODE(os.stat(path).st_mode)

    previous = os.umask(0o027)
    try:
        pipeline.save_checkpoint(tmp_path / "checkpoint.npz", _checkpoint(2))
        written = _atomic.write_folder(tmp_path / "csv", lambda folder: Path(
            folder, "a.csv").write_text("frame\n"))
        os.umask(0o002)
        pipeline.save_checkpoint(tmp_path / "again.npz", _checkpoint(2))
    finally:
        os.umask(previous)
    assert mode(tmp_path / "checkpoint.npz") == 0o640  # not mkstemp's 0o600
    assert written == [str(tmp_path / "csv" / "a.csv")] and mode(written[0]) == 0o640
    assert mode(tmp_path / "csv") == 0o750
    assert mode(tmp_path / "again.npz") == 0o664


def test_a_failed_folder_write_changes_nothing(tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "a.csv").write_text("old\n")

    def fails(folder):
        Path(folder, "a.csv").write_text("new\n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(WriteError, match="cannot write .*csv: No space left"):
        _atomic.write_folder(tmp_path / "csv", fails)
    assert (tmp_path / "csv" / "a.csv").read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["csv"]


def test_replace_outputs_removes_only_stale_files_moseq_wrote(tmp_path):
    project = tmp_path / "p"

    def write(name, text="moseq"):
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    first = [write(name) for name in ("model.npz", "csv/a.csv", "csv/b.csv", "csv/c.csv",
                                      "report/usage.png", "report/report.md")]
    assert replace_outputs(project, first, "fit") == []
    write("csv/notes.csv", "a user's file")
    write("csv/c.csv", "edited by the user since")
    outside = write("../model.npz")  # a record naming a file outside the project is ignored
    record = project / ".moseq-outputs-fit.json"
    listed = json.loads(record.read_text())
    listed["files"]["../model.npz"] = [outside.stat().st_size, outside.stat().st_mtime_ns]
    record.write_text(json.dumps(listed))
    second = [write(name) for name in ("model.npz", "csv/a.csv")]
    removed = replace_outputs(project, second, "fit")
    assert removed == [str(project / name) for name in
                       ("csv/b.csv", "report/report.md", "report/usage.png")]
    assert sorted(os.listdir(project / "csv")) == ["a.csv", "c.csv", "notes.csv"]
    assert not (project / "report").exists()  # emptied, so removed
    assert outside.exists()
    # an application's record is its own: it never removes what the fit wrote
    assert replace_outputs(project, [write("results.h5")], "apply") == []
    assert replace_outputs(project, [], "apply") == [str(project / "results.h5")]
    assert (project / "model.npz").exists() and (project / "csv" / "a.csv").exists()


def test_only_errors_raised_inside_jax_count_as_a_dead_peer():
    """A failed collective becomes a `PeerFailure`; the user's own error (or a write's) keeps
    its type even when its message holds one of the collectives' words."""
    from jax.experimental import multihost_utils

    from moseq.pipeline._distributed import PeerFailure, ProcessShare, across_processes

    layout = ProcessShare.__new__(ProcessShare)  # only its type is read
    with pytest.raises(OSError, match="UNAVAILABLE"), across_processes(layout, "ckpt.npz"):
        raise OSError("disk UNAVAILABLE")

    def gloo_failure(*args, **kwargs):
        raise RuntimeError("Gloo connectFullMesh failed: peer closed the connection")

    # The innermost frame of a collective's error lies in jax: stand in for one there.
    failing = type(multihost_utils.process_allgather)(
        gloo_failure.__code__.replace(co_filename=multihost_utils.__file__), {})
    with pytest.raises(PeerFailure, match="--resume"), across_processes(layout, "ckpt.npz"):
        failing()
