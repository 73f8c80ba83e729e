"""The memory a device offers, and the chunk of frames a block works on at once.

Blocks work on chunks of recordings (`moseq.core.reduce`), so the working memory of a sweep
is that of one chunk, and only the data and the per-recording state grow with the number of
frames. `automatic_chunk_frames` sizes the chunk to the device: a chunk's working set,
at about `WORKING_BYTES_PER_FRAME` bytes per frame, is kept under `CHUNK_SHARE` of its memory.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

WORKING_BYTES_PER_FRAME = 4096
"""About the largest working memory per frame of chunk of the shipped blocks (float32,
keypoint-SLDS, K = 100, D = 10, L = 3): the Kalman latent sampler at ~3.4 kB, the AR
regression statistics at ~2.4 kB, the HMM filter at ~1.1 kB; from XLA's memory analysis
of each compiled block (`tests/test_memory.py` checks the bound)."""

CHUNK_SHARE = 1 / 64
"""The share of a device's memory that one chunk's working set may take."""

MIN_CHUNK_FRAMES, MAX_CHUNK_FRAMES = 2**14, 2**20
"""Bounds of the automatic chunk: smaller chunks would lose speed to per-chunk overhead;
larger ones gain nothing (a chunk of 2**20 frames keeps every core busy)."""


def device_memory_bytes(device: jax.Device | None = None) -> int:
    """The memory of `device` (default: the first JAX device) in bytes: its allocator's
    limit where JAX reports one (GPUs), else the host's physical memory (CPU)."""
    device = jax.devices()[0] if device is None else device
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def smallest_memory_bytes(devices: tuple[jax.Device, ...]) -> int:
    """The smallest `device_memory_bytes` of `devices`. Each process reads its own devices'
    (JAX reports only those); across processes the minimum is gathered, so every process
    gets the same figure and compiles the same programs."""
    local = [d for d in devices if d.process_index == jax.process_index()]
    memory = min(device_memory_bytes(device) for device in local)
    return _smallest_over_processes(memory) if len(local) < len(devices) else memory


@functools.lru_cache
def _smallest_over_processes(memory: int) -> int:
    """The smallest of every process's `memory`: one collective per process and value (the
    processes reach their first call together), not one per call."""
    from jax.experimental import multihost_utils

    return int(np.min(multihost_utils.process_allgather(np.int64(memory))))


def automatic_chunk_frames(mesh: Mesh | None = None) -> int:
    """Frames per chunk for the devices of `mesh` (default: the first device): the smallest
    device's memory times `CHUNK_SHARE` over `WORKING_BYTES_PER_FRAME`, within
    [`MIN_CHUNK_FRAMES`, `MAX_CHUNK_FRAMES`]."""
    devices = (jax.devices()[0],) if mesh is None else tuple(mesh.devices.flat)
    memory = smallest_memory_bytes(devices)
    frames = int(memory * CHUNK_SHARE) // WORKING_BYTES_PER_FRAME
    return max(MIN_CHUNK_FRAMES, min(MAX_CHUNK_FRAMES, frames))


def check_chunk_frames(chunk_frames: int | None) -> int | None:
    """`chunk_frames` checked: None (automatic) or a positive int."""
    if chunk_frames is not None and (isinstance(chunk_frames, bool)
                                     or not isinstance(chunk_frames, int) or chunk_frames < 1):
        raise ValueError(f"`chunk_frames` must be a positive int (frames a block works on at "
                         f"once) or None (sized to the device's memory); got {chunk_frames!r}.")
    return chunk_frames


FIXED_OVERHEAD_BYTES = 1 << 30
"""Memory a fit needs whatever its size: the runtime, the compiler and the programs (about
0.6-0.9 GB of peak RSS at 80k frames on CPU, measured by `python -m benchmarks scale`)."""

STATE_COPIES = 3
"""Copies of the per-recording state a run holds at once: the state, the next sweep's, and
the host copy handed to checkpoints and callbacks."""


class MemoryEstimate(NamedTuple):
    """The memory a fit needs on each device, in bytes (`estimate_memory`)."""

    data: int
    state: int
    working: int
    overhead: int
    available: int

    @property
    def total(self) -> int:
        return self.data + self.state + self.working + self.overhead

    @property
    def fits(self) -> bool:
        return self.total <= self.available

    def describe(self) -> str:
        gb = 2**30
        return (f"{self.total / gb:.2f} GB per device (data {self.data / gb:.2f}, state "
                f"{self.state / gb:.2f}, working memory of one chunk {self.working / gb:.2f}, "
                f"fixed {self.overhead / gb:.2f}) of {self.available / gb:.2f} GB")


def _nbytes(tree) -> int:
    return sum(int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize
               for leaf in jax.tree.leaves(tree))


def estimate_memory(scheduler, data, available: int | None = None) -> MemoryEstimate:
    """The memory a fit of `scheduler` on `data` needs per device, before anything compiles.

    A formula from measurements (not XLA's analysis, which would compile every block): the
    device's share of the data and of `STATE_COPIES` copies of the state (shapes from
    tracing `init`, `jax.eval_shape`), plus one chunk's working set at
    `WORKING_BYTES_PER_FRAME` bytes per frame, plus `FIXED_OVERHEAD_BYTES`. `available`
    defaults to the smallest device's memory (`device_memory_bytes`).
    """
    from moseq.core import gibbs

    padded = scheduler.prepare(data).arrays
    num_recordings, num_frames = padded["mask"].shape
    devices = 1 if scheduler.mesh is None else scheduler.mesh.devices.size
    shapes = jax.eval_shape(lambda d: gibbs.init_state(scheduler.bound_blocks,
                                                        jax.random.key(0), d), padded)
    per_recording = scheduler.per_recording
    state = _nbytes({k: v for k, v in shapes.items() if k in per_recording}) // devices
    shared = _nbytes({k: v for k, v in shapes.items() if k not in per_recording})
    chunk = scheduler.recording_chunks(num_frames).size
    chunk_frames = min(chunk, -(-num_recordings // devices)) * num_frames
    if available is None:
        available = smallest_memory_bytes((jax.devices()[0],) if scheduler.mesh is None
                                          else tuple(scheduler.mesh.devices.flat))
    return MemoryEstimate(data=_nbytes(padded) // devices,
                          state=STATE_COPIES * state + shared,
                          working=chunk_frames * WORKING_BYTES_PER_FRAME,
                          overhead=FIXED_OVERHEAD_BYTES, available=int(available))
