"""GibbsScheduler: chain blocks into sweeps, compile chunks of sweeps, run them on a mesh."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jaxtyping import Array, Float

from moseq.core import sharding
from moseq.core.block import RECORDING_INDEX, Data, GibbsBlock, State
from moseq.core.plan import init_order, validate_plan
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


def _nonfinite(updates: State) -> Array:
    flags = [~jnp.all(jnp.isfinite(v)) for v in updates.values()
             if jnp.issubdtype(jnp.result_type(v), jnp.inexact)]
    return jnp.any(jnp.stack(flags)) if flags else jnp.zeros((), bool)


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

    The state is a dict of arrays; `init`, `sweep` and `run` take and return it without
    changing their inputs. One sweep splits its key into one key per block; per-recording
    draws fold in each recording's global index, so a seed gives the same chain on any mesh.
    """

    blocks: tuple[GibbsBlock, ...]
    data_keys: tuple[str, ...] = eqx.field(static=True)
    mesh: Mesh | None = eqx.field(static=True)
    frozen: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, blocks: Sequence[GibbsBlock], data_keys: Sequence[str] = ("mask",),
                 mesh: Mesh | None = None, frozen: Sequence[str] = ()):
        self.blocks = tuple(blocks)
        self.data_keys = tuple(data_keys)
        self.mesh = sharding.automatic_mesh(mesh)
        writers = validate_plan(self.blocks, self.data_keys)
        init_order(self.blocks, writers)
        init_order(self.blocks, writers, "prior_reads")
        self.frozen = self._check_frozen(frozen)

    # ---- plan ---------------------------------------------------------------------------

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(block.name for block in self.blocks)

    def block(self, name: str) -> GibbsBlock:
        """The block called `name`."""
        for block in self.blocks:
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
        for block in self.blocks:
            data = block.prepare_data(data)
        return data

    def check_data(self, data: Mapping[str, Array]) -> int:
        """Validate the data before any compilation; return the number of recordings."""
        return self._validate(self.prepare_data(data))

    def _validate(self, data: Mapping[str, Array]) -> int:
        missing = [k for k in self.data_keys if k not in data]
        if missing:
            raise ValueError(f"`data` lacks {missing}; this model needs {self.data_keys}.")
        mask = np.asarray(data["mask"]) if "mask" in data else None
        if mask is None or mask.ndim != 2:
            raise ValueError("`data['mask']` must be an (N, T) array of 0/1 frame weights.")
        num_recordings, num_frames = mask.shape
        for name in self.data_keys:
            value = np.asarray(data[name])
            if value.shape[:1] != (num_recordings,):
                raise ValueError(f"`data[{name!r}]` must have {num_recordings} recordings on "
                                 f"its first axis, like the mask; got shape {value.shape}.")
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
        for block in self.blocks:
            block.check_data(data)
        return num_recordings

    def _layout(self, data: Mapping[str, Array], state: State | None):
        data = self.prepare_data(data)
        num_recordings = self._validate(data)
        size = sharding.padded_size(num_recordings, self.mesh)
        padded = {k: sharding.pad_recordings(jnp.asarray(data[k]), size) for k in self.data_keys}
        if size > num_recordings:
            padded["mask"] = padded["mask"].at[num_recordings:].set(0)
        padded[RECORDING_INDEX] = jnp.arange(size)
        data_names = set(padded)
        padded = sharding.place(padded, data_names, self.mesh)
        if state is not None:
            per_recording = self.per_recording
            state = {k: sharding.pad_recordings(jnp.asarray(v), size) if k in per_recording
                     else jnp.asarray(v) for k, v in state.items()}
            state = sharding.place(state, per_recording, self.mesh)
        return padded, state, num_recordings

    # ---- init, sweep, log joint ----------------------------------------------------------

    def init(self, key, data: Mapping[str, Array], given: State | None = None) -> State:
        """Initial state: every block's `init`, ordered so each runs after what it reads.

        `given` holds values of some blocks' variables (e.g. the parameters of a fitted model,
        to apply it to new recordings): those blocks are not initialised.
        """
        padded, given, num_recordings = self._layout(data, self._check_given(given))
        with recording_mesh(self.mesh):
            state = _init(self, as_key(key), padded, given)
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

    def sweep(self, key, data: Mapping[str, Array], state: State,
              frozen: Sequence[str] | None = None) -> State:
        """One pass over the blocks (those in `frozen`, by default the scheduler's own
        `frozen`, are held fixed), compiled once."""
        frozen = self._check_frozen(frozen)
        padded, state, num_recordings = self._layout(data, dict(state))
        with recording_mesh(self.mesh):
            new_state, nonfinite = _sweep(self, as_key(key), padded, state, frozen=frozen)
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
        return _sample_prior(self, as_key(key), {k: jnp.asarray(v) for k, v in data.items()},
                             given)

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
        return _sample_data(self, data_key, state, dict(data)), state

    def log_joint(self, data: Mapping[str, Array], state: State) -> Float[Array, ""]:
        """log p(data, state): the sum of every block's `log_prob`."""
        padded, state, _ = self._layout(data, dict(state))
        with recording_mesh(self.mesh):
            return _log_joint(self, padded, state)

    # ---- run -----------------------------------------------------------------------------

    def run(
        self,
        key,
        data: Mapping[str, Array],
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
        """Run `num_sweeps` sweeps, compiled in chunks of `chunk_size` with `lax.scan`.

        Sweep s uses `fold_in(key, s)`, so a run resumed at `start_sweep=s` from the state
        after sweep s - 1 continues the same chain bit for bit. The trace holds, per sweep,
        the log joint and every `summaries[name](data, state)`. After each chunk a progress
        line is printed (if `progress`) and every `callbacks(sweeps_done, state, trace)` is
        called with the unpadded state. A NaN raises `NumericalFailure` naming the sweep and
        the block, carrying the last good state.
        """
        if num_sweeps < 0 or chunk_size < 1:
            raise ValueError("`num_sweeps` must be >= 0 and `chunk_size` >= 1.")
        frozen = self._check_frozen(frozen)
        summaries = tuple(sorted(dict(summaries or {}).items()))
        key = as_key(key)
        padded, state, num_recordings = self._layout(data, dict(state))
        traces: list[dict] = []
        done, started = 0, time.perf_counter()
        while done < num_sweeps:
            steps = min(chunk_size, num_sweeps - done)
            first = start_sweep + done
            with recording_mesh(self.mesh):
                state, chunk_trace, failed = _run_chunk(
                    self, key, padded, state, jnp.asarray(first), jnp.asarray(steps),
                    frozen=frozen, summaries=summaries, chunk_size=chunk_size,
                )
            chunk_trace = {k: np.asarray(v)[:steps] for k, v in chunk_trace.items()}
            sweep_failed, block_failed = (int(x) for x in np.asarray(failed))
            if sweep_failed >= 0:
                kept = sweep_failed - first
                traces.append({k: v[:kept] for k, v in chunk_trace.items()})
                trace = _concat(traces)
                raise NumericalFailure(
                    f"sweep {sweep_failed}: {self.block_names[block_failed]} produced a NaN or "
                    "infinite value; the state returned with this error is the last good one "
                    f"(after sweep {sweep_failed - 1}).",
                    sharding.unpad(state, self.per_recording, num_recordings), trace,
                )
            traces.append(chunk_trace)
            done += steps
            if progress:
                rate = done / (time.perf_counter() - started)
                print(f"sweep {start_sweep + done:6d}/{start_sweep + num_sweeps}  "
                      f"{rate:7.2f} sweeps/s  log joint {chunk_trace['log_joint'][-1]:.6g}",
                      file=sys.stderr, flush=True)
            if callbacks:
                host_state = sharding.unpad(state, self.per_recording, num_recordings)
                for callback in callbacks:
                    callback(start_sweep + done, host_state, _concat(traces))
        return sharding.unpad(state, self.per_recording, num_recordings), _concat(traces)


def _concat(traces: list[dict]) -> dict[str, np.ndarray]:
    if not traces:
        return {}
    return {k: np.concatenate([t[k] for t in traces]) for k in traces[0]}


def _declared(block: GibbsBlock, method: str, updates: State) -> State:
    """Refuse (at trace time) a block method that returns variables it does not declare."""
    unexpected = set(updates) - set(block.writes)
    if unexpected:
        raise ValueError(f"{block.name}.{method} returned {sorted(unexpected)}, which it does "
                         f"not declare in `writes` {block.writes}.")
    return updates


def _resample_all(scheduler: GibbsScheduler, key, data, state, frozen):
    """The body of a sweep: every unfrozen block in order, each with its own key."""
    keys = jax.random.split(key, len(scheduler.blocks))
    flags = []
    for block, block_key in zip(scheduler.blocks, keys, strict=True):
        if block.name in frozen:
            flags.append(jnp.zeros((), bool))
            continue
        updates = _declared(block, "resample", block.resample(block_key, data, state))
        flags.append(_nonfinite(updates))
        state = {**state, **updates}
    state = sharding.constrain(state, scheduler.per_recording, scheduler.mesh)
    return state, jnp.stack(flags)


def _compile(fn, static_argnames: tuple[str, ...] = ()):
    """`jax.jit` of `fn(scheduler, ...)` with the scheduler's arrays traced and the rest of it
    (block types, hyperparameters, mesh) static, plus `static_argnames`."""

    @functools.partial(jax.jit, static_argnames=("static", *static_argnames))
    def compiled(params, *args, static, **kwargs):
        return fn(eqx.combine(params, static), *args, **kwargs)

    @functools.wraps(fn)
    def call(scheduler, *args, **kwargs):
        params, static = eqx.partition(scheduler, eqx.is_array)
        return compiled(params, *args, static=static, **kwargs)

    return call


def _in_order(scheduler: GibbsScheduler, key, reads: str, given: State | None, draw):
    """Run `draw(block, key, state)` for every block in dependency order (by `reads`), one
    key per block; blocks whose variables are all `given` keep those values."""
    given = given or {}
    writers = validate_plan(scheduler.blocks, scheduler.data_keys)
    keys = dict(zip(scheduler.block_names, jax.random.split(key, len(scheduler.blocks)),
                    strict=True))
    state: State = {}
    for block in init_order(scheduler.blocks, writers, reads):
        if block.writes and all(v in given for v in block.writes):
            updates = {v: given[v] for v in block.writes}
        else:
            updates = draw(block, keys[block.name], state)
        state = {**state, **updates}
    return state


def _init_state(scheduler: GibbsScheduler, key, data, given=None) -> State:
    state = _in_order(scheduler, key, "init_reads", given, lambda block, key, state: _declared(
        block, "init", block.init(key, data, state)))
    return sharding.constrain(state, scheduler.per_recording, scheduler.mesh)


def _prior_draws(scheduler: GibbsScheduler, key, data, given=None) -> State:
    return _in_order(scheduler, key, "prior_reads", given, lambda block, key, state: _declared(
        block, "sample_prior", block.sample_prior(key, {**data, **state})))


def _data_draws(scheduler: GibbsScheduler, key, state, data) -> dict:
    keys = jax.random.split(key, len(scheduler.blocks))
    for block, block_key in zip(scheduler.blocks, keys, strict=True):
        simulated = block.sample_data(block_key, {**data, **state})
        # A block may simulate a variable that is latent in this model (x in an SLDS).
        data = {**data, **{k: v for k, v in simulated.items() if k in scheduler.data_keys}}
    return data


def _log_joint_terms(scheduler: GibbsScheduler, data, state):
    return sum(block.log_prob(data, state) for block in scheduler.blocks)


def _run_sweeps(scheduler: GibbsScheduler, key, data, state, first_sweep, steps, *, frozen,
                summaries, chunk_size):
    """`chunk_size` sweeps in one `lax.scan`; sweeps past `steps` or after a failure are
    skipped, so every chunk of a run shares one compilation."""

    def one_sweep(carry, offset):
        state, failed = carry
        sweep_number = first_sweep + offset
        active = (offset < steps) & (failed[0] < 0)

        def advance(state):
            new_state, nonfinite = _resample_all(
                scheduler, jax.random.fold_in(key, sweep_number), data, state, frozen)
            bad = jnp.any(nonfinite)
            new_state = jax.tree.map(lambda new, old: jnp.where(bad, old, new), new_state, state)
            failure = jnp.where(bad, jnp.stack([sweep_number, jnp.argmax(nonfinite)]), failed)
            return new_state, failure

        state, failed = jax.lax.cond(active, advance, lambda s: (s, failed), state)
        record = {"log_joint": _log_joint_terms(scheduler, data, state)}
        record.update({name: fn(data, state) for name, fn in summaries})
        return (state, failed), record

    initial_failed = jnp.array([-1, -1], dtype=jnp.result_type(int))
    (state, failed), trace = jax.lax.scan(
        one_sweep, (state, initial_failed), jnp.arange(chunk_size)
    )
    return state, trace, failed


_init = _compile(_init_state)
_sweep = _compile(_resample_all, ("frozen",))
_log_joint = _compile(_log_joint_terms)
_sample_prior = _compile(_prior_draws)
_sample_data = _compile(_data_draws)
_run_chunk = _compile(_run_sweeps, ("frozen", "summaries", "chunk_size"))
