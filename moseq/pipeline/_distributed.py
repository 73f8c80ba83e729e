"""A fit across processes and hosts: starting JAX's distributed runtime, each process's share
of the recordings, and what crosses between processes (the checkpoint's state, the outputs).

`fit` asks `layout()` how the recordings are laid out: `OneProcess` (the whole batch on this
process, the chain as it always was) or `ProcessShare` (after `initialize`, with several
processes: each reads only its share of the files, the global arrays are assembled from the
processes' rows, and process 0 gathers what it writes).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from moseq.pipeline._config import Config, ConfigError
from moseq.pipeline._files import _data_hash, _whole_array_hash, combine_digests, row_digests
from moseq.pipeline._project import _fps, build_model, load_data

AUTO = "auto"
HEARTBEAT_TIMEOUT = 100  # seconds without heartbeats after which a process counts as dead
INIT_TIMEOUT = 300  # seconds to wait for every process to join


class PeerFailure(RuntimeError):
    """Another process of a fit across processes died (or lost its connection), so this one
    stopped."""


def initialize(coordinator: str, num_processes: int | None = None,
               process_id: int | None = None, *, heartbeat_timeout: int = HEARTBEAT_TIMEOUT,
               init_timeout: int = INIT_TIMEOUT) -> None:
    """Start JAX's distributed runtime for a fit across processes; call it in every process,
    before anything uses JAX's devices (`fit(..., coordinator=...)` calls it).

    Args:
        coordinator: `"HOST:PORT"` of process 0 (every process gives the same), or `"auto"`
            to read the coordinator, the process count and this process's id from a SLURM
            job step (`srun`) or an Open MPI launch (`mpirun`).
        num_processes, process_id: the number of processes and this one's id, 0 to
            num_processes - 1 (process 0 runs the coordinator); read from the cluster with
            "auto".
        heartbeat_timeout: seconds after which a silent process counts as dead; the others
            then stop with an error naming it (`PeerFailure`, or JAX's own message).
        init_timeout: seconds to wait for every process to join.
    """
    import jax

    if jax.distributed.is_initialized():
        return
    if coordinator == AUTO:
        address = None
    else:
        address = _check_address(coordinator)
        if num_processes is None or process_id is None:
            raise ValueError(f"`coordinator={coordinator!r}` needs `num_processes` and "
                             "`process_id` (--num-processes N --process-id I), or use "
                             "coordinator='auto' (--coordinator auto) under SLURM or Open MPI.")
    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise ValueError(f"`{name}` must be a non-negative int; got {value!r}.")
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        raise ValueError(f"`process_id` ({process_id}) must be below `num_processes` "
                         f"({num_processes}): ids run from 0 to num_processes - 1.")
    try:
        jax.distributed.initialize(
            address, num_processes, process_id, initialization_timeout=int(init_timeout),
            heartbeat_timeout_seconds=int(heartbeat_timeout),
            shutdown_timeout_seconds=int(heartbeat_timeout))
    except ValueError as error:
        if address is not None:
            raise
        raise ValueError(
            f"coordinator='auto' found no cluster to join ({error}). It reads a SLURM job "
            "step (SLURM_JOB_ID, SLURM_STEP_NODELIST, SLURM_NTASKS, SLURM_PROCID, "
            "SLURM_LOCALID: start with `srun`) or an Open MPI launch (OMPI_MCA_orte_hnp_uri: "
            "start with `mpirun`); elsewhere give --coordinator HOST:PORT --num-processes N "
            "--process-id I.") from None
    except RuntimeError as error:
        raise RuntimeError(
            f"Cannot start JAX's distributed runtime: {error} It must start before anything "
            "uses JAX's devices: call moseq.pipeline.fit(..., coordinator=...) (or "
            "jax.distributed.initialize) first in the process.") from None


def _check_address(coordinator) -> str:
    if not isinstance(coordinator, str) or not re.fullmatch(r"\[?[^\s\[\]]+\]?:\d{1,5}",
                                                            coordinator):
        raise ValueError(f"`coordinator` must be 'HOST:PORT' (e.g. '10.0.0.1:12345', process "
                         f"0's host and a free port) or 'auto'; got {coordinator!r}.")
    return coordinator


def layout() -> OneProcess | ProcessShare:
    """`ProcessShare` once the distributed runtime runs several processes, else `OneProcess`."""
    import jax

    if jax.distributed.is_initialized() and jax.process_count() > 1:
        return ProcessShare()
    return OneProcess()


class OneProcess:
    """Every recording on this process: the data as loaded, the state as computed."""

    writer = True

    def load(self, config: Config):
        """`(batch, recordings)` of this process: here, all of them."""
        return load_data(config)

    def model(self, config: Config, batch):
        return build_model(config, batch)

    def prepare(self, model, batch):
        """The data `fit_staged` is given."""
        return batch.data

    def data_hash(self, batch) -> str:
        return _data_hash(batch)

    def older_data_hashes(self, batch) -> tuple[str, ...]:
        """Data hashes of earlier checkpoint versions that resume still accepts."""
        return (_whole_array_hash(batch),)

    def to_host(self, model, data, tree: Mapping) -> dict | None:
        """`tree` as host arrays, on the process that writes (None elsewhere)."""
        return {k: np.asarray(v) for k, v in tree.items()}

    def from_host(self, model, data, state: Mapping) -> dict:
        """A checkpoint's state, laid out for `fit_staged`."""
        return dict(state)

    def result(self, state: Mapping) -> dict:
        """The state `fit` returns."""
        return {k: np.asarray(v) for k, v in state.items()}

    def finish(self) -> None:
        """Called by every process once the outputs are written."""

    def outputs(self, model, data, state, batch, *, marginals: bool):
        """What `_write_outputs` needs, on the process that writes: `(state, batch,
        marginals)`; marginals None lets it compute them."""
        return state, batch, None

    def fps(self, config: Config, recordings) -> float | None:
        return _fps(config, recordings)

    def share(self, recordings) -> str:
        return f"{len(recordings)} recording(s)"


class ProcessShare(OneProcess):
    """This process's share of the recordings: a contiguous run of the data's files, balanced
    by size (`share_files`). Arrays are global, assembled from every process's rows
    (`GibbsScheduler.prepare_process_local`); process 0 writes."""

    def __init__(self):
        import jax

        self.process, self.count = jax.process_index(), jax.process_count()
        self.writer = self.process == 0

    def load(self, config: Config):
        import moseq.io

        files = moseq.io.pose_files(config.data_paths(), config.data.format)
        mine = share_files(files, self.count)[self.process]
        batch, recordings = load_data(config, paths=[str(path) for path in mine])
        everyone = allgather_json({"length": int(batch.data["mask"].shape[1]),
                                   "keypoints": list(batch.keypoint_names),
                                   "keys": list(map(str, batch.keys)),
                                   "bounds": np.asarray(batch.bounds).tolist(),
                                   "fps": [rec.fps for rec in recordings.values()]})
        names = [tuple(each["keypoints"]) for each in everyone]
        if len(set(names)) > 1:
            raise ConfigError(f"The processes' recordings have their keypoints in different "
                              f"orders ({sorted(set(names))}); list them in `data.keypoints` "
                              "so that every file is read in one order.")
        length = max(each["length"] for each in everyone)
        batch = batch._replace(data=_pad_frames(batch.data, length))
        self.all_keys = np.array([key for each in everyone for key in each["keys"]])
        self.all_bounds = np.array([b for each in everyone for b in each["bounds"]], int)
        self.fps_values = [fps for each in everyone for fps in each["fps"]]
        self.num_recordings = len(set(self.all_keys))
        if self.num_recordings < sum(len(set(each["keys"])) for each in everyone):
            repeated = sorted({str(key) for key in self.all_keys if
                               sum(key in each["keys"] for each in everyone) > 1})
            raise ValueError(f"Recordings {repeated} are named in the files of two processes; "
                             "rename the files so that every recording's name is unique.")
        self.digests = [d for each in allgather_json(row_digests(batch)) for d in each]
        return batch, recordings

    def model(self, config: Config, batch):
        from moseq.core.sharding import process_mesh

        return build_model(config, batch, mesh=process_mesh())

    def prepare(self, model, batch):
        return model.prepare_process_local(batch.data)

    def data_hash(self, batch) -> str:
        return combine_digests(self.digests, batch.keypoint_names)

    def older_data_hashes(self, batch) -> tuple[str, ...]:
        return ()

    def result(self, state: Mapping) -> dict:
        return dict(state)

    def finish(self) -> None:
        """Hold every process until process 0 has written the outputs, so none shuts the
        distributed runtime down under it."""
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("moseq fit: outputs written")

    def to_host(self, model, data, tree: Mapping) -> dict | None:
        from moseq.core.sharding import gather_rows

        return gather_rows(dict(tree), model.per_recording, data.rows)

    def from_host(self, model, data, state: Mapping) -> dict:
        import jax

        from moseq.core.sharding import assemble, replicated

        per_recording = model.per_recording
        mine = data.rows.mine
        local = {k: np.asarray(v)[mine] for k, v in state.items() if k in per_recording}
        return {**{k: jax.make_array_from_process_local_data(replicated(model.mesh),
                                                              np.asarray(v))
                   for k, v in state.items() if k not in per_recording},
                **assemble(local, data.rows, model.mesh)}

    def outputs(self, model, data, state, batch, *, marginals: bool):
        from moseq.core.sharding import gather_rows
        from moseq.models.fitting import syllable_marginals

        host = gather_rows({**state, "mask": data.arrays["mask"]},
                           model.per_recording | {"mask"}, data.rows)
        probs = (gather_rows({"marginals": syllable_marginals(model, data, state)[0]},
                             {"marginals"}, data.rows) if marginals else None)
        if host is None:
            return None
        mask = host.pop("mask")
        whole = batch._replace(data={"mask": mask}, keys=self.all_keys, bounds=self.all_bounds)
        return host, whole, None if probs is None else probs["marginals"]

    def fps(self, config: Config, recordings) -> float | None:
        rates = {rate for rate in self.fps_values if rate is not None}
        return config.data.fps if config.data.fps is not None else (
            rates.pop() if len(rates) == 1 else None)

    def share(self, recordings) -> str:
        return (f"{len(recordings)} of the {self.num_recordings} recording(s) on process "
                f"{self.process} of {self.count}")


def share_files(files: Sequence, count: int) -> list[list]:
    """`files` cut into `count` contiguous runs of about equal total size, none empty."""
    if len(files) < count:
        raise ConfigError(f"The fit runs on {count} processes but the data have only "
                          f"{len(files)} file(s); each process reads whole files, so run at "
                          f"most {len(files)} processes.")
    ends = np.cumsum([max(os.path.getsize(path), 1) for path in files])
    cuts = [0]
    for part in range(1, count):
        cut = int(np.argmin(np.abs(ends - ends[-1] * part / count))) + 1  # the nearest end
        cuts.append(min(max(cut, cuts[-1] + 1), len(files) - (count - part)))
    cuts.append(len(files))
    return [list(files[start:stop]) for start, stop in zip(cuts, cuts[1:], strict=False)]


def _pad_frames(data: Mapping, length: int) -> dict:
    """Rows lengthened to `length` frames like `moseq.ops.batching.batch` pads them: the last
    frame repeated, with mask and confidence 0."""
    extra = length - data["mask"].shape[1]
    if extra == 0:
        return dict(data)
    padded = {k: np.concatenate([v, np.repeat(v[:, -1:], extra, axis=1)], axis=1)
              for k, v in data.items()}
    for name in ("mask", "conf"):
        if name in padded:
            padded[name][:, -extra:] = 0
    return padded


def allgather_json(value) -> list:
    """Every process's `value` (anything JSON can hold), in process order; a collective."""
    from jax.experimental import multihost_utils

    encoded = np.frombuffer(json.dumps(value).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.int64(encoded.size))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:encoded.size] = encoded
    gathered = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(sizes), -1)
    return [json.loads(row[:size].tobytes()) for row, size in zip(gathered, sizes, strict=True)]


@contextlib.contextmanager
def across_processes(layout, checkpoint) -> Iterator[None]:
    """Across processes, a failed collective (another process died, or its host went away)
    becomes a `PeerFailure` that says so and how to resume from `checkpoint`."""
    import jax

    if not isinstance(layout, ProcessShare):
        yield
        return
    try:
        yield
    except jax.errors.JaxRuntimeError as error:
        raise _peer_failure(error, checkpoint) from error
    except (RuntimeError, ValueError, OSError) as error:  # how a gather may fail
        if not is_collective_failure(error):
            raise
        raise _peer_failure(error, checkpoint) from error


COLLECTIVE_FAILURES = ("Gloo", "UNAVAILABLE", "DEADLINE_EXCEEDED", "task died")
"""Words of the errors a collective raises when another process is gone."""


def is_collective_failure(error: BaseException) -> bool:
    """Whether `error` is a collective's failure: raised inside JAX (its innermost frame in
    the jax or jaxlib package) with one of `COLLECTIVE_FAILURES`' words. An error of the
    user's own code or of a file write is never one, whatever its message says."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return False
    innermost = Path(frames[-1].filename).parts
    return (("jax" in innermost or "jaxlib" in innermost)
            and any(marker in str(error) for marker in COLLECTIVE_FAILURES))


def _peer_failure(error: Exception, checkpoint) -> PeerFailure:
    import jax

    return PeerFailure(
        f"process {jax.process_index()} of {jax.process_count()}: a collective with the other "
        f"processes failed ({str(error).splitlines()[0][:300]}); another process of this fit "
        f"has most likely died or lost its connection (see its log). The fit stopped; start "
        f"every process again with `--resume` to continue from {checkpoint}.")
