"""GibbsScheduler: chain blocks into sweeps and run them on a mesh.

The scheduler wraps the functional core (`moseq.core.gibbs`) with the data layout (prepare,
validate, pad and shard the recordings), compilation and error reporting. Compilation is per
block: `init`, `sweep` and `run` call one compiled program per block (and per summary)
instead of compiling the whole sweep as one program; the log joint, a sum of small terms,
is one program. XLA's compile-time memory grows
with the size of a program, so this bounds the peak memory of a fit by its largest block
instead of the sum of all of them (about half, for the keypoint-SLDS), at the cost of a few
dispatches per sweep. A block's program depends only on the block (its arrays are traced,
the rest is static: `eqx.filter_jit`), so models sharing a block share its compilation.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jaxtyping import Array, Float

from moseq.core import gibbs, memory, sharding
from moseq.core.block import RECORDING_INDEX, Data, GibbsBlock, State
from moseq.core.plan import bind_plan, init_order, refer, validate_plan, writers
from moseq.core.reduce import recording_mesh

Summary = Callable[[Data, State], Array]
Callback = Callable[[int, State, dict], None]


class NumericalFailure(FloatingPointError):
    """A block produced a NaN or infinite value; `state` is the last good state."""

    def __init__(self, message: str, state: State, trace: dict):
        super().__init__(message)
        self.state = state
        self.trace = trace


def as_key(key):
    """Accept a typed key, a legacy uint32 key, or an int seed."""
    if isinstance(key, int | np.integer):
        return jax.random.key(int(key))
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.shape == (2,) and key.dtype == jnp.uint32:
        return jax.random.wrap_key_data(key)
    raise ValueError(f"`key` must be a jax.random key or an int seed; got {key!r}.")


class GibbsScheduler(eqx.Module):
    """A blocked Gibbs sampler: a validated list of blocks, resampled in order each sweep.

    Args:
        blocks: the blocks, in sweep order.
        data_keys: names of the data arrays the blocks read; every data array has a leading
            recording axis (N, ...) and `"mask"` (N, T) marks real frames.
        mesh: optional `jax.sharding.Mesh` with a `"batch"` axis: recordings are padded to a
            multiple of its size and spread over it; global parameters are replicated.
        frozen: names of blocks held fixed by default (after `init`) in `sweep` and `run`,
            e.g. parameters a model keeps at their initial value; `frozen=` there overrides.
        chunk_frames: frames each device works on at once (whole recordings, at least one):
            blocks sum statistics and draw recording-wise variables chunk by chunk, so the
            working memory stays that of one chunk. Default None: sized to the device's
            memory (`moseq.core.memory.automatic_chunk_frames`). The draws do not depend
            on it; sums over recordings only change their order of additions.

    The state is a dict of arrays; `init`, `sweep` and `run` take and return it without
    changing their inputs. One sweep splits its key into one key per block; per-recording
    draws fold in each recording's global index, so a seed gives the same chain on any mesh.

    `blocks` holds each block once, its provider fields replaced by `Provider` references
    (an `eqx.tree_at` on a block reaches every block that uses it); `block(name)` and
    `bound_blocks` give blocks with their providers attached.
    """

    blocks: tuple[GibbsBlock, ...]
    data_keys: tuple[str, ...] = eqx.field(static=True)
    mesh: Mesh | None = eqx.field(static=True)
    frozen: tuple[str, ...] = eqx.field(static=True)
    chunk_frames: int | None = eqx.field(static=True)

    def __init__(self, blocks: Sequence[GibbsBlock], data_keys: Sequence[str] = ("mask",),
                 mesh: Mesh | None = None, frozen: Sequence[str] = (),
                 chunk_frames: int | None = None):
        bound = bind_plan(blocks)
        self.data_keys = tuple(data_keys)
        owners = validate_plan(bound, self.data_keys)
        init_order(bound, owners)
        init_order(bound, owners, "prior_reads")
        self.blocks = tuple(refer(block) for block in bound)
        self.mesh = sharding.automatic_mesh(mesh)
        self.frozen = self._check_frozen(frozen)
        self.chunk_frames = memory.check_chunk_frames(chunk_frames)

    # ---- plan ---------------------------------------------------------------------------

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(block.name for block in self.blocks)

    @property
    def bound_blocks(self) -> tuple[GibbsBlock, ...]:
        """The blocks in sweep order, each with the plan's providers attached."""
        return bind_plan(self.blocks)

    def block(self, name: str) -> GibbsBlock:
        """The block called `name`, with its providers attached."""
        for block in self.bound_blocks:
            if block.name == name:
                return block
        raise KeyError(f"no block named {name!r}; the plan has {self.block_names}.")

    @property
    def per_recording(self) -> set[str]:
        return {v for block in self.blocks for v in block.per_recording}

    def _check_frozen(self, frozen: Sequence[str] | None) -> tuple[str, ...]:
        if frozen is None:
            return self.frozen
        if isinstance(frozen, str):
            raise TypeError(f"`frozen` must be a sequence of block names; got the string "
                            f"{frozen!r} (write ({frozen!r},)).")
        unknown = set(frozen) - set(self.block_names)
        if unknown:
            raise ValueError(f"`frozen` names {sorted(unknown)}, which are not blocks of this "
                             f"plan; choose from {self.block_names}.")
        return tuple(sorted(frozen))

    # ---- data and state layout -----------------------------------------------------------

    def prepare_data(self, data: Mapping[str, Array]) -> dict:
        """The data after every block's `prepare_data` (gap filling, optional arrays)."""
        data = dict(data)
        for block in self.bound_blocks:
            data = block.prepare_data(data)
        return data

    def check_data(self, data: Mapping[str, Array], *, init: bool = False,
                   given: State | None = None) -> int:
        """Validate the data before any compilation; return the number of recordings. With
        `init`, also run the checks `init(key, data, given)` runs (e.g. that a PCA has enough
        frames) for every block whose variables are not in `given`."""
        data = self.prepare_data(data)
        num_recordings = self._validate(data)
        if init:
            self._check_init_data(data, self._check_given(given))
        return num_recordings

    def _check_init_data(self, data: Mapping[str, Array], given: State) -> None:
        if sharding.spans_processes(self.mesh):
            return  # no host holds every recording to check (`prepare_process_local`)
        for block in self.bound_blocks:
            if not set(block.writes) & set(given):
                block.check_init_data(data)

    def _validate(self, data: Mapping[str, Array]) -> int:
        missing = [k for k in self.data_keys if k not in data]
        if missing:
            raise ValueError(f"`data` lacks {missing}; this model needs {self.data_keys}.")
        mask = np.asarray(data["mask"]) if "mask" in data else None
        if mask is None or mask.ndim != 2:
            raise ValueError("`data['mask']` must be an (N, T) array of 0/1 frame weights; got "
                             f"shape {None if mask is None else mask.shape}.")
        num_recordings, num_frames = mask.shape
        if not num_recordings or not num_frames:
            raise ValueError(f"`data['mask']` has shape {mask.shape}: no "
                             f"{'recordings (N = 0)' if not num_recordings else 'frames (T = 0)'}"
                             "; give at least one recording with at least one frame.")
        if not np.all(np.isfinite(mask)) or np.any(mask < 0):
            raise ValueError("`data['mask']` must hold finite weights >= 0 (1 on observed "
                             "frames, 0 elsewhere); it has NaN, infinite or negative values.")
        if not np.any(mask > 0):
            raise ValueError("`data['mask']` is 0 everywhere: no frame is observed, so there "
                             "is nothing to fit; set it to 1 on the observed frames.")
        for name in self.data_keys:
            value = np.asarray(data[name])
            if value.shape[:1] != (num_recordings,):
                raise ValueError(f"`data[{name!r}]` must have {num_recordings} recordings on "
                                 f"its first axis, like the mask; got shape {value.shape}.")
            if value.ndim >= 2 and value.shape[1] != num_frames:
                raise ValueError(f"`data[{name!r}]` has {value.shape[1]} frames on its second "
                                 f"axis, but `data['mask']` has {num_frames}; give every "
                                 f"per-frame array the mask's (N, T) = {mask.shape} first.")
            if value.shape[:2] == (num_recordings, num_frames) and np.issubdtype(
                value.dtype, np.floating
            ):
                observed = mask.reshape(mask.shape + (1,) * (value.ndim - 2)) > 0
                bad = ~np.isfinite(value) & observed
                if bad.any():
                    n, t = np.argwhere(bad)[0][:2]
                    raise ValueError(
                        f"`data[{name!r}]` has {int(bad.sum())} NaN or infinite values in "
                        f"unmasked frames (first: recording {n}, frame {t}); set mask 0 there "
                        "or interpolate them."
                    )
        for block in self.bound_blocks:
            block.check_data(data)
        return num_recordings

    def prepare(self, data: Mapping[str, Array] | PreparedData) -> PreparedData:
        """The data laid out once for this scheduler: every block's `prepare_data`, the
        checks of `check_data`, padding to the mesh and placement on it. Pass the result to
        `init`, `sweep`, `run` or `log_joint` to skip that work on repeated calls."""
        if isinstance(data, PreparedData):
            size = sharding.padded_size(data.num_recordings, self.mesh)
            expected = {*self.data_keys, RECORDING_INDEX}
            if set(data.arrays) != expected or len(data.arrays["mask"]) != size:
                raise ValueError("`data` was prepared for another model or mesh (it holds "
                                 f"{sorted(data.arrays)} for {len(data.arrays['mask'])} rows); "
                                 "prepare it with this scheduler's `prepare`.")
            return data
        data = self.prepare_data(data)
        num_recordings = self._validate(data)
        size = sharding.padded_size(num_recordings, self.mesh)
        padded = {k: sharding.pad_recordings(jnp.asarray(data[k]), size) for k in self.data_keys}
        if size > num_recordings:
            padded["mask"] = padded["mask"].at[num_recordings:].set(0)
        padded[RECORDING_INDEX] = jnp.arange(size)
        return PreparedData(sharding.place(padded, set(padded), self.mesh), num_recordings)

    def prepare_process_local(self, data: Mapping[str, Array]) -> PreparedData:
        """`prepare` across processes (after `jax.distributed.initialize`, with a mesh over
        every process's devices, `moseq.core.sharding.process_mesh`): `data` holds only this
        process's recordings, which come after those of the processes before it. Each
        process's rows are prepared and checked on its host, padded to a common block (a
        multiple of its devices, with mask 0) and assembled into global arrays; every process
        calls it. The result keeps the padding rows (`num_recordings` counts them, so `init`,
        `sweep` and `run` return the padded global state) and gives the layout in `rows`
        (`moseq.core.sharding.gather_rows` brings the real rows to process 0). The recording
        index of a row is its index among all processes' recordings, so the chain is the one
        of all recordings on one process."""
        if self.mesh is None:
            raise ValueError("`prepare_process_local` needs a scheduler built with a mesh over "
                             "every process's devices (moseq.core.sharding.process_mesh()).")
        data = self.prepare_data(data)
        num_local = self._validate(data)
        rows = sharding.process_rows(num_local, self.mesh)
        local = {k: np.asarray(data[k]) for k in self.data_keys}
        mask = sharding.pad_rows(local["mask"], rows.block).copy()
        mask[num_local:] = 0
        first = int(rows.offsets[jax.process_index()])
        padding = int(rows.counts.sum()) + jax.process_index() * rows.block + np.arange(
            rows.block - num_local)  # after every real recording, distinct per process
        local.update(mask=mask, **{RECORDING_INDEX: np.concatenate(
            [first + np.arange(num_local), padding])})
        arrays = sharding.assemble(local, rows, self.mesh)
        return PreparedData(arrays, len(rows.counts) * rows.block, rows)

    def _layout(self, data: Mapping[str, Array] | PreparedData, state: State | None):
        prepared = self.prepare(data)
        padded, num_recordings = prepared.arrays, prepared.num_recordings
        size = len(padded["mask"])
        if state is not None:
            per_recording = self.per_recording
            state = {k: sharding.pad_recordings(jnp.asarray(v), size) if k in per_recording
                     else jnp.asarray(v) for k, v in state.items()}
            state = sharding.place(state, per_recording, self.mesh)
        return padded, state, num_recordings

    def recording_chunks(self, num_frames: int) -> gibbs.RecordingChunks:
        """The chunks of recordings (of `num_frames` frames each, padded) that blocks work on:
        `chunk_frames` (or the automatic size) // num_frames recordings, at least one."""
        frames = self.chunk_frames or memory.automatic_chunk_frames(self.mesh)
        return gibbs.RecordingChunks(max(1, frames // max(1, num_frames)),
                                     frozenset(self.per_recording))

    def _steps(self, padded: Data) -> tuple[Callable, Callable, Callable]:
        """The compiled init and resample steps of a block and the compiled log joint,
        working in `recording_chunks`."""
        chunks = self.recording_chunks(padded["mask"].shape[1])
        return tuple(functools.partial(step, chunks=chunks) for step in (
            _compiled_init_block, _compiled_resample_block, _compiled_log_joint))

    # ---- init, sweep, log joint ----------------------------------------------------------

    def init(self, key, data: Mapping[str, Array] | PreparedData,
             given: State | None = None) -> State:
        """Initial state: every block's `init`, ordered so each runs after what it reads.

        `given` holds values of some blocks' variables (e.g. the parameters of a fitted model,
        to apply it to new recordings): those blocks are not initialised, and values of other
        shapes than init would make are refused. Before anything compiles, every block that
        is initialised checks the data (`GibbsBlock.check_init_data`).
        """
        padded, given, num_recordings = self._layout(data, self._check_given(given))
        self._check_init_data(padded, given)
        with recording_mesh(self.mesh):
            self._check_given_shapes(padded, given)
            state = gibbs.init_state(self.bound_blocks, as_key(key), padded, given,
                                     mesh=self.mesh, step=self._steps(padded)[0])
        return sharding.unpad(state, self.per_recording, num_recordings)

    def _check_given(self, given: State | None) -> State:
        given = dict(given or {})
        for block in self.blocks:
            present = [v for v in block.writes if v in given]
            if present and len(present) < len(block.writes):
                missing = sorted(set(block.writes) - set(present))
                raise ValueError(f"`given` sets {present} of {block.name} but not {missing}; "
                                 "give all of a block's variables or none.")
        unknown = set(given) - {v for b in self.blocks for v in b.writes}
        if unknown:
            raise ValueError(f"`given` names {sorted(unknown)}, which no block writes.")
        return given

    def _check_given_shapes(self, data: Mapping[str, Array], given: State) -> None:
        """Refuse given values whose shapes differ from those `init` would make (e.g.
        parameters fitted on other keypoints, dimensions or numbers of states)."""
        if not given:
            return
        # Only the given variables' blocks and what their `init` reads are traced.
        blocks = self.bound_blocks
        owners = writers(blocks)
        needed = {owners[name].name for name in given}
        for block in reversed(init_order(blocks, owners)):
            if block.name in needed:
                needed |= {owners[v].name for v in block.init_reads if v in owners}
        traced = [block for block in blocks if block.name in needed]
        expected = jax.eval_shape(lambda key: gibbs.init_state(
            traced, key, data, None, mesh=self.mesh), jax.random.key(0))
        wrong = [f"`given[{name!r}]` has shape {tuple(np.shape(value))}, this model and data "
                 f"need {tuple(expected[name].shape)}" for name, value in sorted(given.items())
                 if tuple(np.shape(value)) != tuple(expected[name].shape)]
        if wrong:
            raise ValueError(f"{'; '.join(wrong)}. The given values come from a model of "
                             "other dimensions (other keypoints, 2-D vs 3-D data, latent_dim, "
                             "num_states or nlags): give values fitted with this model on data "
                             "of this layout.")

    def sweep(self, key, data: Mapping[str, Array] | PreparedData, state: State,
              frozen: Sequence[str] | None = None) -> State:
        """One pass over the blocks (those in `frozen`, by default the scheduler's own
        `frozen`, are held fixed), compiled once."""
        frozen = self._check_frozen(frozen)
        padded, state, num_recordings = self._layout(data, dict(state))
        with recording_mesh(self.mesh):
            new_state, nonfinite = gibbs.sweep(self.bound_blocks, as_key(key), padded, state,
                                               frozen, mesh=self.mesh,
                                               step=self._steps(padded)[1])
        if bool(jnp.any(nonfinite)):
            block = self.block_names[int(jnp.argmax(nonfinite))]
            raise NumericalFailure(f"{block} produced a NaN or infinite value in this sweep.",
                                   dict(state), {})
        return sharding.unpad(new_state, self.per_recording, num_recordings)

    def sample_prior(self, key, data: Mapping[str, Array], given: State | None = None) -> State:
        """Every variable drawn from the generative model, parents first; `data` only gives
        shapes (its mask, and any data a prior needs). Blocks whose variables are in `given`
        keep those values."""
        given = {k: jnp.asarray(v) for k, v in self._check_given(given).items()}
        return _compiled_sample_prior(self.bound_blocks, as_key(key),
                                      {k: jnp.asarray(v) for k, v in data.items()}, given)

    def simulate(self, key, data: Mapping[str, Array] | int, num_frames: int | None = None, *,
                 given: State | None = None) -> tuple[dict, State]:
        """A draw of (data, state) from the joint distribution: `sample_prior` (keeping the
        variables in `given`, e.g. chosen parameters), then each observation block's
        `sample_data`. Pass the shapes as `simulate(key, num_recordings, num_frames)` or as a
        data dict holding at least the mask (entries not simulated are kept)."""
        if not isinstance(data, Mapping):
            if num_frames is None:
                raise ValueError("`simulate(key, num_recordings, num_frames)` needs num_frames.")
            data = {"mask": jnp.ones((int(data), int(num_frames)))}
        prior_key, data_key = jax.random.split(as_key(key))
        state = self.sample_prior(prior_key, data, given)
        return _compiled_sample_data(self.bound_blocks, data_key, state, dict(data)), state

    def log_joint(self, data: Mapping[str, Array] | PreparedData, state: State) -> Float[Array, ""]:
        """log p(data, state): the sum of every block's `log_prob`."""
        padded, state, _ = self._layout(data, dict(state))
        with recording_mesh(self.mesh):
            return self._steps(padded)[2](self.bound_blocks, padded, state)

    # ---- run -----------------------------------------------------------------------------

    def run(
        self,
        key,
        data: Mapping[str, Array] | PreparedData,
        state: State,
        num_sweeps: int,
        *,
        start_sweep: int = 0,
        chunk_size: int = 10,
        frozen: Sequence[str] | None = None,
        summaries: Mapping[str, Summary] | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
    ) -> tuple[State, dict[str, np.ndarray]]:
        """Run `num_sweeps` sweeps (each block compiled once), reporting every `chunk_size`.

        Sweep s uses `fold_in(key, s)`, so a run resumed at `start_sweep=s` from the state
        after sweep s - 1 continues the same chain bit for bit. The trace holds, per sweep,
        the log joint and every `summaries[name](data, state)`. After each chunk of
        `chunk_size` sweeps a progress line is printed (if `progress`) and every
        `callbacks(sweeps_done, state, trace)` is called with the unpadded state. The rate
        on the progress line leaves out the first sweep, which compiles the programs. A NaN
        raises `NumericalFailure` naming the sweep and the block, carrying the last good state.
        """
        if num_sweeps < 0 or chunk_size < 1:
            raise ValueError("`num_sweeps` must be >= 0 and `chunk_size` >= 1.")
        frozen = self._check_frozen(frozen)
        summaries = tuple(sorted(dict(summaries or {}).items()))
        key = as_key(key)
        padded, state, num_recordings = self._layout(data, dict(state))
        blocks = self.bound_blocks
        _, resample_step, log_joint_step = self._steps(padded)
        records: list[dict] = []
        first_sweep_end = None  # the first sweep compiles: the rate counts from its end

        def one_sweep(sweep_number, state):
            with recording_mesh(self.mesh):
                return gibbs.sweep(blocks, jax.random.fold_in(key, sweep_number), padded, state,
                                   frozen, mesh=self.mesh, step=resample_step)

        # The NaN flags are read once per chunk, not after every sweep, so that the host never
        # waits for the device between sweeps; a failure replays the chunk (the chain is
        # deterministic) up to the last good state.
        chunk_start, chunk_state, chunk_flags = 0, state, []
        for done in range(num_sweeps):
            state, nonfinite = one_sweep(start_sweep + done, state)
            chunk_flags.append(nonfinite)
            with recording_mesh(self.mesh):
                records.append({
                    "log_joint": log_joint_step(blocks, padded, state),
                    **{name: _compiled_summary(fn, padded, state) for name, fn in summaries},
                })
                if first_sweep_end is None:
                    jax.block_until_ready(state)
                    first_sweep_end = time.perf_counter()
            if (done + 1) % chunk_size and done + 1 < num_sweeps:
                continue
            flags = np.asarray(jnp.stack(chunk_flags))
            if flags.any():
                bad, block = np.argwhere(flags)[0]
                sweep_number = start_sweep + chunk_start + int(bad)
                for replayed in range(chunk_start, chunk_start + int(bad)):
                    chunk_state, _ = one_sweep(start_sweep + replayed, chunk_state)
                raise NumericalFailure(
                    f"sweep {sweep_number}: {self.block_names[int(block)]} produced a NaN or "
                    "infinite value; the state returned with this error is the last good one "
                    f"(after sweep {sweep_number - 1}).",
                    sharding.unpad(chunk_state, self.per_recording, num_recordings),
                    _trace(records[:chunk_start + int(bad)]),
                )
            chunk_start, chunk_state, chunk_flags = done + 1, state, []
            sweep_number = start_sweep + done
            if progress:
                rate = (f"{done / (time.perf_counter() - first_sweep_end):7.2f} sweeps/s" if done
                        else "compiled")
                print(f"sweep {sweep_number + 1:6d}/{start_sweep + num_sweeps}  {rate}  "
                      f"log joint {float(records[-1]['log_joint']):.6g}",
                      file=sys.stderr, flush=True)
            if callbacks:
                host_state = sharding.unpad(state, self.per_recording, num_recordings)
                for callback in callbacks:
                    callback(sweep_number + 1, host_state, _trace(records))
        return sharding.unpad(state, self.per_recording, num_recordings), _trace(records)


class PreparedData(NamedTuple):
    """Data laid out for a scheduler (`GibbsScheduler.prepare`): prepared by the blocks,
    validated, padded to the mesh and placed on it. `init`, `sweep`, `run` and `log_joint`
    accept it in place of a data dict and then skip that work.

    Attributes:
        arrays: the data arrays, each `(N_padded, ...)`, plus the recording index.
        num_recordings: N, the real recordings (the rest is padding); across processes
            (`prepare_process_local`), every row, padding included.
        rows: across processes, where each process's recordings lie; None otherwise.
    """

    arrays: dict
    num_recordings: int
    rows: sharding.ProcessRows | None = None


def _trace(records: list[dict]) -> dict[str, np.ndarray]:
    """Per-sweep records stacked into arrays (sweep axis first)."""
    if not records:
        return {}
    return {k: np.stack([np.asarray(r[k]) for r in records]) for k in records[0]}


_compiled_resample_block = eqx.filter_jit(gibbs.resample_block)
_compiled_init_block = eqx.filter_jit(gibbs.init_block)
# The log joint is one program: its terms are small, and eight programs cost eight
# compilations' fixed overhead.
_compiled_log_joint = eqx.filter_jit(gibbs.log_joint)
_compiled_summary = eqx.filter_jit(lambda fn, data, state: fn(data, state))
_compiled_sample_prior = eqx.filter_jit(gibbs.sample_prior)
_compiled_sample_data = eqx.filter_jit(gibbs.sample_data)
