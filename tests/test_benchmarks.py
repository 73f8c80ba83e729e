"""The logic of `python -m benchmarks scale`: its memory slope and how a measurement that
fails or runs past its timeout is reported. (The figures themselves are measured by the
benchmarks, never in the tests.)"""

from __future__ import annotations

import sys

import pytest

from benchmarks import scale


def test_memory_slope_is_gb_per_million_frames_of_device_memory_where_measured():
    rss = [{"frames": f, "rss_mb": 500 + 1024 * f / 1e6 * 0.7, "device_mb": None}
           for f in (80_000, 320_000, 1_280_000)]
    assert scale.memory_slope(rss) == pytest.approx(0.7)
    device = [{**r, "device_mb": 100 + 1024 * r["frames"] / 1e6 * 2.0} for r in rss]
    assert scale.memory_slope(device) == pytest.approx(2.0)


def test_a_measurement_past_its_timeout_or_failing_is_an_error():
    timed_out = scale.measure_in_subprocess("moseq", "arhmm", 5_000, 1, timeout=0.01)
    assert timed_out == {"error": "timed out after 0 s"}
    failed = scale.measure_in_subprocess("moseq", "arhmm", 5_000, 1, python="false")
    assert failed == {"error": "exit 1: no output"}


def test_scale_reports_errors_as_lines_and_the_slope_of_what_was_measured(monkeypatch):
    def fake(implementation, model_name, frames, num_sweeps, python=sys.executable,
             timeout=None, chunk_frames=None):
        if implementation == "jax-moseq":
            return {"error": f"timed out after {timeout:.0f} s"}
        if frames == 15_000:
            return {"error": "exit 1: RESOURCE_EXHAUSTED"}
        return {"seconds": 0.1 * frames / 5_000, "first_s": 20.0, "init_s": 5.0,
                "rss_mb": 800 + frames / 1000, "data_mb": 300.0, "cpu_s": 30.0,
                "device_mb": None, "estimate_mb": 1000.0, "sweep_s": 0.09 * frames / 5_000,
                "frames": frames}

    monkeypatch.setattr(scale, "measure_in_subprocess", fake)
    lines = []
    scale.run(lambda name, seconds, **fields: lines.append((name, seconds, fields)),
              ["--models", "arhmm", "--sizes", "5000", "10000", "15000", "--timeout", "9"])
    by_name = {name: (seconds, fields) for name, seconds, fields in lines}
    assert by_name["scale arhmm: moseq, 15000 frames"] == (
        None, {"error": "exit 1: RESOURCE_EXHAUSTED"})
    assert by_name["scale arhmm: jax-moseq, 5000 frames"] == (
        None, {"error": "timed out after 9 s"})
    seconds, fields = by_name["scale arhmm: moseq, 10000 frames"]
    assert seconds == pytest.approx(0.2)
    assert fields["run_overhead"] == "+11%" and fields["estimate_mb"] == "1000"
    _, slope = by_name["scale arhmm: peak RSS memory slope, GB per million frames"]
    assert slope == {"slope": f"{1 / 1.024:.3f}", "between": "5000-10000"}
