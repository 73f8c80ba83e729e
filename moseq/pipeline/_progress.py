"""The progress display of a fit or an application: a line as each phase starts, then a
status per chunk of sweeps with a steady rate and an ETA, and marks at each stage's end.

The bar is drawn here rather than by a progress library: every figure on it (a rate without
compilation, a per-stage ETA, the compilation time) is computed here anyway, the line-per-chunk
form for log files is needed anyway (a library's carriage-return frames read badly there),
and tqdm, the obvious choice, hides its bar on terminals that report zero rows (`docker exec
-t`, `script`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np


class ProgressBar:
    """Progress of a run of `total` sweeps, written to `stream`.

    Permanent lines name each phase as it starts (`phase`, `phase_done`, `note`) and each
    stage as it begins compiling (`begin`: pass it to `fit_staged` as a stage callback).
    Called after each chunk of sweeps (a `fit_staged` or scheduler callback), it shows the
    stage, the sweep, the steady rate, the ETA and the log joint: on a terminal as a bar
    redrawn in place below the permanent lines, elsewhere (a log file, CI) as one line per
    chunk. A line marks a stage's end with its final log joint, and the first chunk of the
    stage after it with its first.

    A stage's first chunk includes compiling its programs, so the steady rate counts from
    the end of the first chunk, and the compilation time (the first chunk's time less its
    sweeps at that rate) is reported once the second chunk gives the rate. The ETA is that
    of the stage (of the whole run in the last stage).

    Args:
        total: sweeps of the whole run (every stage), numbered from 0.
        stream: where to write (default `sys.stderr`).
        show: False writes nothing, so that callers need no branches.
        clock: seconds on a monotonic clock (tests pass a fake one).
    """

    def __init__(self, total: int, stream=None, *, show: bool = True,
                 clock: Callable[[], float] = time.perf_counter):
        self.total, self.show, self.clock = total, show, clock
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = ""  # the status line on a terminal, redrawn in place ("": none yet)
        self._phase_started = clock()
        self._sweeps_done: int | None = None
        self._begin("", 0, total, follows=False)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- permanent lines --------------------------------------------------------------------

    def note(self, text: str) -> None:
        """A permanent line."""
        if not self.show:
            return
        if self._drawn:  # over the status line, which is drawn again below it
            self.stream.write("\r" + text.ljust(len(self._drawn)) + "\n" + self._drawn)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def phase(self, text: str) -> None:
        """A phase starts: the line `text ...`."""
        self._phase_started = self.clock()
        self.note(f"{text} ...")

    def phase_done(self, text: str) -> None:
        """The phase ended: the line `text in <time since phase()>`."""
        self.note(f"{text} in {_duration(self.clock() - self._phase_started)}")

    # ---- stages and chunks ------------------------------------------------------------------

    def begin(self, stage: str, start_sweep: int, end_sweep: int) -> None:
        """Stage `stage` runs sweeps `start_sweep` .. `end_sweep - 1`, compiling first (the
        signature of `fit_staged`'s `stage_callbacks`)."""
        self._begin(stage, start_sweep, end_sweep, follows=self._sweeps_done == start_sweep)
        self.note(f"{stage} stage (sweeps {start_sweep + 1}-{end_sweep}): compiling ...")

    def _begin(self, stage: str, start_sweep: int, end_sweep: int, follows: bool) -> None:
        self.stage, self.start_sweep, self.end_sweep = stage, start_sweep, end_sweep
        self.follows = follows  # the stage follows another in this run: mark its first sweep
        self.started = self.clock()
        self.first_chunk: tuple[int, float] | None = None  # (sweeps done, time) at its end
        self.compile_reported = False

    def _rate(self, sweeps_done: int, now: float) -> float | None:
        """Sweeps per second since the end of the stage's first chunk (None before)."""
        if self.first_chunk is None or sweeps_done <= self.first_chunk[0]:
            return None
        return (sweeps_done - self.first_chunk[0]) / max(now - self.first_chunk[1], 1e-9)

    def __call__(self, sweeps_done: int, state, trace) -> None:
        """After a chunk: `trace["log_joint"]` holds a value per sweep of the run so far."""
        if not self.show:
            return
        now = self.clock()
        log_joints = np.asarray(trace["log_joint"])
        stage = f"{self.stage} stage" if self.stage else "run"
        if self.first_chunk is None:
            self.first_chunk = (sweeps_done, now)
            if self.follows and len(log_joints) > self.start_sweep:
                self.note(f"{stage}: first log joint {float(log_joints[self.start_sweep]):.6g} "
                          f"(sweep {self.start_sweep + 1})")
        rate = self._rate(sweeps_done, now)
        if rate is not None and not self.compile_reported:
            first_sweeps, first_end = self.first_chunk
            compiling = first_end - self.started - (first_sweeps - self.start_sweep) / rate
            self.note(f"{stage} compiled in {_duration(max(compiling, 0.0))}")
            self.compile_reported = True
        log_joint = float(log_joints[-1]) if len(log_joints) else float("nan")
        self._status(sweeps_done, rate, log_joint)
        self._sweeps_done = sweeps_done
        if sweeps_done == self.end_sweep:
            speed = (f"{rate:.2f} sweeps/s once compiled" if rate is not None
                     else "compilation included")
            self.note(f"{stage} done at sweep {sweeps_done} in {_duration(now - self.started)}"
                      f" ({speed}): final log joint {log_joint:.6g}")

    def _status(self, sweeps_done: int, rate: float | None, log_joint: float) -> None:
        if rate is None:
            speed, eta = "-- sweeps/s", "ETA --"
        else:
            speed = f"{rate:.2f} sweeps/s"
            eta = _duration((self.end_sweep - sweeps_done) / rate)
            eta = f"ETA {eta}" if self.end_sweep >= self.total else f"{self.stage} ends in {eta}"
        stats = f"{speed}  {eta}  log joint {log_joint:.6g}"
        label = f"{self.stage:>4} " if self.stage else ""
        sweeps = f"{sweeps_done:>{len(str(self.total))}}/{self.total}"
        if not self.tty:
            self.stream.write(f"{label}sweep {sweeps}  {stats}\n")
        else:
            columns = self._columns() - 1  # the last column would wrap on some terminals
            width = min(20, columns - len(label) - len(sweeps) - len(stats) - 5)
            filled = round(width * sweeps_done / max(self.total, 1))
            bar = f"[{'#' * filled}{'-' * (width - filled)}] " if width >= 10 else ""
            line = f"{label}{bar}{sweeps}  {stats}"[:columns]
            self.stream.write("\r" + line.ljust(len(self._drawn)))
            self._drawn = line
        self.stream.flush()

    def _columns(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        return columns or 80

    def close(self) -> None:
        """End the status line (on a terminal); call when the run ends or fails."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = ""


def _duration(seconds: float) -> str:
    """`4.2 s`, `21 s`, `3 min 05 s`, `2 h 07 min`."""
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
