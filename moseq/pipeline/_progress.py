"""The fit's progress bar, drawn by a scheduler (or `fit_staged`) callback."""

from __future__ import annotations

import sys
import time

import numpy as np


class ProgressBar:
    """A callback drawing `[####----] sweep s/S stage  r sweeps/s  log joint L` on `stream`
    (redrawn in place on a terminal, one line per chunk otherwise).

    The rate counts the sweeps since the stage began (`begin`). A trace with a `stage` entry
    (`fit_staged`'s) names the stage; when it changes, the new stage is timed from the
    previous report, the end of the stage before it.
    """

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total, self.width = total, width
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.begin("", 0)

    def begin(self, stage: str, start_sweep: int) -> None:
        """Start timing `stage` at sweep `start_sweep` (sweeps done before it)."""
        self.stage, self.start_sweep, self.started = stage, start_sweep, time.perf_counter()
        self.reported = (start_sweep, self.started)

    def __call__(self, sweeps_done: int, state, trace) -> None:
        stage = trace.get("stage", ())
        if len(stage) and str(stage[-1]) != self.stage:
            self.stage = str(stage[-1])
            self.start_sweep, self.started = self.reported
        now = time.perf_counter()
        rate = (sweeps_done - self.start_sweep) / max(now - self.started, 1e-9)
        filled = int(self.width * sweeps_done / max(self.total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        log_joint = float(np.asarray(trace["log_joint"])[-1]) if len(trace["log_joint"]) else 0
        line = (f"[{bar}] sweep {sweeps_done}/{self.total} {self.stage:>4}  {rate:6.2f} "
                f"sweeps/s  log joint {log_joint:.6g}")
        end = "" if self.tty and sweeps_done < self.total else "\n"
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()
        self.reported = (sweeps_done, time.perf_counter())
