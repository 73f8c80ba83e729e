"""A fit across processes: two `moseq fit` processes on this machine (one CPU device each,
gloo collectives over 127.0.0.1) give the chain of a one-process fit, resume across
processes from process 0's checkpoint, and stop with a message when the other one dies.

The project is three recordings cut from the DeepLabCut clip, so the processes hold 2 and 1
of them (process 1 pads its block to 2 rows) and every array is assembled from both."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from moseq import pipeline
from moseq.export import load_results_h5

DLC_CSV = (Path(__file__).parent / "data" / "dlc_openfield_mouse"
           / "openfield_dlc_inference_example.csv")
PIECES = [(0, 260), (300, 220), (560, 180)]  # (first frame, frames) of each recording
TINY = {"model": {"latent_dim": 3, "num_states": 6, "nlags": 2},
        "fitting": {"ar_sweeps": 2, "full_sweeps": 2, "chunk_size": 1, "checkpoint_every": 1,
                    "float64": True, "seed": 3}}
TIMEOUT = 900  # seconds a two-process fit may take on a loaded two-core machine


def _recordings(folder: Path) -> Path:
    lines = DLC_CSV.read_text().splitlines()
    header, frames = lines[:3], lines[3:]
    folder.mkdir()
    for number, (start, length) in enumerate(PIECES):
        (folder / f"mouse{number}.csv").write_text(
            "\n".join(header + frames[start:start + length]) + "\n")
    return folder


def _project(folder: Path, data: Path, **fitting) -> Path:
    pipeline.init_project(folder, [str(data)], ["snout"], ["tailbase"], model=TINY["model"],
                          fitting={**TINY["fitting"], **fitting})
    return folder


def _free_port() -> int:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        return server.getsockname()[1]


def _start(project: Path, *options: str) -> list[subprocess.Popen]:
    """Both processes of `moseq fit project --coordinator 127.0.0.1:PORT ...`."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_PLATFORMS": "cpu"}
    if jax.config.jax_compilation_cache_dir:  # the suite's cache: a rerun starts warm
        env.update(JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.2")
    port = _free_port()
    return [subprocess.Popen(
        [sys.executable, "-m", "moseq", "fit", str(project), "--no-progress",
         "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id",
         str(process), "--heartbeat-timeout", "10", *options],
        env=env, cwd=Path(__file__).parents[1], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for process in (0, 1)]


def _finish(processes: list[subprocess.Popen]) -> list[str]:
    """Wait for both processes; fail with their logs unless both succeed."""
    logs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=TIMEOUT)
            logs.append(out + err)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    for number, (process, log) in enumerate(zip(processes, logs, strict=True)):
        assert process.returncode == 0, f"process {number} failed:\n{log[-3000:]}"
    return logs


def _assert_same_state(state: dict, expected: dict) -> None:
    """The syllables equal, the rest equal up to the order of floating-point sums."""
    assert set(state) == set(expected)
    np.testing.assert_array_equal(state["z"], expected["z"])
    for name, value in expected.items():
        np.testing.assert_allclose(state[name], value, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """Two-process fits of the project, 3 sweeps, then raised to 4 and resumed (again on two
    processes), beside a one-process fit of 4 sweeps whose state after sweep 3 is kept."""
    folder = tmp_path_factory.mktemp("multiprocess")
    data = _recordings(folder / "data")
    two = _project(folder / "two", data, full_sweeps=1)
    one = _project(folder / "one", data)
    started = _start(two)
    after_3 = {}

    def keep(sweeps_done, state, trace):
        if sweeps_done == 3:
            after_3.update({k: np.asarray(v) for k, v in state.items()})

    reference = pipeline.fit(one, progress=False, report=False, callbacks=[keep])
    first_logs = _finish(started)
    first = pipeline.load_checkpoint(two / "checkpoint.npz")
    results_3 = load_results_h5(two / "results.h5")[0]
    written_3 = sorted(str(path.relative_to(two)) for path in two.rglob("*"))
    text = (two / "config.toml").read_text().replace("full_sweeps = 1", "full_sweeps = 2")
    (two / "config.toml").write_text(text)
    resumed_logs = _finish(_start(two, "--resume", "--no-report"))
    return dict(two=two, one=one, reference=reference, after_3=after_3, first=first,
                results_3=results_3, written_3=written_3, logs=first_logs + resumed_logs)


@pytest.mark.slow
def test_two_processes_give_the_chain_of_one(fits):
    first = fits["first"]
    assert first.sweeps == 3 and list(first.trace["stage"]) == ["ar", "ar", "full"]
    _assert_same_state(first.state, fits["after_3"])
    reference = pipeline.load_checkpoint(fits["one"] / "checkpoint.npz")
    np.testing.assert_allclose(first.trace["log_joint"], reference.trace["log_joint"][:3],
                               rtol=1e-9)
    assert first.data_hash == reference.data_hash  # the same rows, wherever they were read
    assert "checkpoint:" in fits["logs"][0] and "checkpoint:" in fits["logs"][1]


@pytest.mark.slow
def test_process_0_writes_the_outputs_of_every_recording(fits):
    assert sorted(fits["results_3"]) == ["mouse0", "mouse1", "mouse2"]
    for name, (_, length) in zip(["mouse0", "mouse1", "mouse2"], PIECES, strict=True):
        assert len(fits["results_3"][name]["syllable"]) == length
    written = fits["written_3"]
    for name in ("model.npz", "results.h5", "checkpoint.npz", "report/report.md",
                 "csv/mouse0.csv", "csv/mouse1.csv", "csv/mouse2.csv"):
        assert name in written, name
    assert not [name for name in written if name.endswith(".tmp")]


@pytest.mark.slow
def test_resume_across_processes_continues_the_chain(fits):
    resumed = pipeline.load_checkpoint(fits["two"] / "checkpoint.npz")
    assert resumed.sweeps == 4
    _assert_same_state(resumed.state, fits["reference"].state)
    a, _ = load_results_h5(fits["two"] / "results.h5")
    b, _ = load_results_h5(fits["one"] / "results.h5")
    for name, table in b.items():
        np.testing.assert_array_equal(a[name]["syllable"], table["syllable"], err_msg=name)


@pytest.mark.slow
def test_when_a_process_dies_the_other_stops_with_a_message(fits, tmp_path):
    project = _project(tmp_path / "p", fits["two"].parent / "data", full_sweeps=100000)
    processes = _start(project, "--no-report")
    checkpoint = project / "checkpoint.npz"
    deadline = time.monotonic() + TIMEOUT
    try:
        while not (checkpoint.exists() and pipeline.load_checkpoint(checkpoint).sweeps >= 1):
            assert all(p.poll() is None for p in processes), processes[0].communicate()[1]
            assert time.monotonic() < deadline, "no checkpoint after the first sweep"
            time.sleep(0.2)
        processes[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, err = processes[0].communicate(timeout=120)
        waited = time.monotonic() - killed
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate()
    assert processes[0].returncode != 0
    assert waited < 60, f"process 0 took {waited:.0f} s to stop"
    # Caught in a collective: moseq's message; between collectives, JAX's runtime ends the
    # process once the heartbeats stop (10 s here), with its own message.
    assert ("another process of this fit has most likely died" in err
            or "another task died" in err), err[-3000:]
    if "moseq fit: error:" in err:
        assert "--resume" in err
    print(f"process 0 stopped {waited:.1f} s after the kill: {err.strip().splitlines()[-1]}")


# ---- the pieces, in this process ------------------------------------------------------------

def test_files_are_shared_in_contiguous_runs_of_about_equal_size(tmp_path):
    from moseq.pipeline._distributed import share_files

    sizes = [50, 10, 10, 10, 10, 10, 50, 5]
    files = []
    for number, size in enumerate(sizes):
        files.append(tmp_path / f"f{number}")
        files[-1].write_bytes(b"x" * size)
    shares = share_files(files, 3)
    assert [path for share in shares for path in share] == files
    assert [len(share) for share in shares] == [1, 5, 2]  # 50, 50 and 55 bytes
    assert [len(share) for share in share_files(files[:3], 3)] == [1, 1, 1]
    with pytest.raises(pipeline.ConfigError, match="only 2 file"):
        share_files(files[:2], 3)


def test_a_process_share_padded_to_the_common_length_has_the_rows_of_the_whole_batch(tmp_path):
    """Each process's rows, lengthened to the longest recording of all (`_pad_frames`), are
    the rows of the batch of every recording, so their digests give the same data hash."""
    from moseq.pipeline._distributed import _pad_frames
    from moseq.pipeline._files import _data_hash, combine_digests, row_digests

    data = _recordings(tmp_path / "data")
    config = pipeline.Config.load(_project(tmp_path / "p", data))
    whole, _ = pipeline.load_data(config)
    files = sorted(data.iterdir())
    digests, lengths = [], []
    for share, rows in ((files[:2], slice(0, 2)), (files[2:], slice(2, 3))):
        batch, _ = pipeline.load_data(config, paths=[str(path) for path in share])
        lengths.append(batch.data["mask"].shape[1])
        batch = batch._replace(data=_pad_frames(batch.data, whole.data["mask"].shape[1]))
        for name, value in batch.data.items():
            np.testing.assert_array_equal(value, whole.data[name][rows], err_msg=name)
        digests += row_digests(batch)
    assert lengths == [PIECES[0][1], PIECES[2][1]]  # the second share is lengthened
    assert combine_digests(digests, whole.keypoint_names) == _data_hash(whole)


@pytest.mark.parametrize("arguments, message", [
    (("localhost",), "HOST:PORT"),
    (("127.0.0.1:1234",), "needs `num_processes`"),
    (("127.0.0.1:1234", 2, 2), "below `num_processes`"),
    (("127.0.0.1:1234", 2, -1), "non-negative int"),
])
def test_bad_distributed_arguments_are_refused_before_anything_starts(arguments, message):
    with pytest.raises(ValueError, match=message):
        pipeline.initialize_distributed(*arguments)
