"""The functional core of a Gibbs sampler: one sweep, init, draws from the prior and of the
data, and the log joint, as pure, traceable functions of a plan's blocks.

`blocks` is a plan in sweep order with providers attached (`GibbsScheduler.bound_blocks`, or
`moseq.core.bind_plan`). Each block method is given only what it declares
(`moseq.core.declared_inputs`): a read it does not declare raises `UndeclaredRead` when the
function is traced. `GibbsScheduler` wraps these functions with the data layout, one compiled
program per block (through the `step` arguments) and error reporting; `moseq.testing`
compiles whole chains of them as one program.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import Array, Bool, Float

from moseq.core import sharding
from moseq.core.block import (
    Data,
    GibbsBlock,
    State,
    declaration,
    declared_inputs,
    visible,
)
from moseq.core.plan import PlanError, init_order, writers
from moseq.core.reduce import map_over_recordings, recording_chunks


class UndeclaredRead(PlanError):
    """A block method looked up a variable that it does not declare."""


def method_inputs(block: GibbsBlock, method: str, key, data: Mapping, state: Mapping) -> tuple:
    """The arguments of `block.method`, holding only what it declares (`declared_inputs`):
    `(key, data, state)` for `init` and `resample`, `(data, state)` for `log_prob`, and
    `(key, variables)` with the state merged into the data for `sample_prior` and
    `sample_data`. Each dict is a new one."""
    data_names, state_names = declared_inputs(block, method)
    if method in ("sample_prior", "sample_data"):
        return key, visible({**data, **state}, data_names | state_names)
    views = (visible(data, data_names), visible(state, state_names))
    return views if method == "log_prob" else (key, *views)


def invoke(block: GibbsBlock, method: str, args: tuple, data: Mapping, state: Mapping):
    """`block.method(*args)` for the `method_inputs` of `data` and `state`: a lookup of a
    variable they hold but `args` hide raises `UndeclaredRead`; a draw that returns a
    variable the block does not write raises a `ValueError`."""
    try:
        out = getattr(block, method)(*args)
    except KeyError as error:
        name = error.args[0] if error.args else None
        shown = set().union(*(a for a in args if isinstance(a, Mapping)))
        if isinstance(name, str) and (name in data or name in state) and name not in shown:
            raise UndeclaredRead(
                f"{block.name}.{method} read {name!r}, which it does not declare; add it to "
                f"`{declaration(method)}` of {type(block).__name__}.") from None
        raise
    if method in ("init", "resample", "sample_prior"):
        unexpected = set(out) - set(block.writes)
        if unexpected:
            raise ValueError(f"{block.name}.{method} returned {sorted(unexpected)}, which it "
                             f"does not declare in `writes` {block.writes}.")
    return out


def call_block(block: GibbsBlock, method: str, key, data: Mapping, state: Mapping):
    """`block.method` given only its declared inputs (`method_inputs`, `invoke`); `key` is
    ignored for `log_prob`."""
    return invoke(block, method, method_inputs(block, method, key, data, state), data, state)


def nonfinite(updates: State) -> Bool[Array, ""]:
    """Whether any float entry of `updates` holds a NaN or infinite value."""
    flags = [~jnp.all(jnp.isfinite(v)) for v in updates.values()
             if jnp.issubdtype(jnp.result_type(v), jnp.inexact)]
    return jnp.any(jnp.stack(flags)) if flags else jnp.zeros((), bool)


class RecordingChunks(NamedTuple):
    """How many recordings of each device a block works on at once (`size`), and which state
    variables have a recording axis (`per_recording`, with the data they are cut along)."""

    size: int
    per_recording: frozenset[str]


def _call_in_chunks(block: GibbsBlock, method: str, key, data: Data, state: State,
                    chunks: RecordingChunks | None, mesh: Mesh | None):
    """`call_block(block, method, ...)` (`init` or `resample`), on chunks of `chunks.size`
    recordings of each device when the block is `recording_wise` and a device holds more."""
    num_recordings = data["mask"].shape[0] // (1 if mesh is None else
                                               mesh.shape[sharding.BATCH_AXIS])
    with recording_chunks(None if chunks is None else chunks.size):
        if chunks is None or not block.recording_wise or num_recordings <= chunks.size:
            return call_block(block, method, key, data, state)
        key, data_view, state_view = method_inputs(block, method, key, data, state)
        local = {k: v for k, v in state_view.items() if k in chunks.per_recording}
        shared = {k: v for k, v in state_view.items() if k not in chunks.per_recording}

        def draw(recordings, shared):
            chunk_state = {**shared["state"], **recordings["state"]}
            return invoke(block, method, (shared["key"], recordings["data"], chunk_state),
                          data, state)

        return map_over_recordings(draw, {"data": data_view, "state": local},
                                   {"key": key, "state": shared})


def resample_block(block: GibbsBlock, key, data: Data, state: State, *,
                   mesh: Mesh | None = None, chunks: RecordingChunks | None = None,
                   ) -> tuple[State, Bool[Array, ""]]:
    """A block's draw in a sweep (its per-recording outputs laid out over `mesh`) and whether
    it holds a NaN or inf. With `chunks`, sums over recordings and the draws of a
    `recording_wise` block take `chunks.size` recordings at a time (the same draws)."""
    updates = _call_in_chunks(block, "resample", key, data, state, chunks, mesh)
    updates = sharding.constrain(updates, set(block.per_recording), mesh)
    return updates, nonfinite(updates)


def init_block(block: GibbsBlock, key, data: Data, state: State, *,
               mesh: Mesh | None = None, chunks: RecordingChunks | None = None) -> State:
    """A block's first values (its per-recording outputs laid out over `mesh`), in `chunks`
    as `resample_block`."""
    updates = _call_in_chunks(block, "init", key, data, state, chunks, mesh)
    return sharding.constrain(updates, set(block.per_recording), mesh)


def block_log_prob(block: GibbsBlock, data: Data, state: State, *,
                   chunks: RecordingChunks | None = None) -> Float[Array, ""]:
    """A block's term of the log joint (its sums over recordings in `chunks`)."""
    with recording_chunks(None if chunks is None else chunks.size):
        return call_block(block, "log_prob", None, data, state)


def sweep(blocks: Sequence[GibbsBlock], key, data: Data, state: State,
          frozen: Sequence[str] = (), *, mesh: Mesh | None = None,
          step: Callable = resample_block) -> tuple[State, Bool[Array, " B"]]:
    """One sweep: every block not named in `frozen`, in order, each with its own child of
    `key`, through `step` (`resample_block` or a compiled form of it). Returns the new state
    and each block's NaN flag (False for frozen blocks)."""
    keys = jax.random.split(key, len(blocks))
    flags = []
    for block, block_key in zip(blocks, keys, strict=True):
        if block.name in frozen:
            flags.append(jnp.zeros((), bool))
            continue
        updates, flag = step(block, block_key, data, state, mesh=mesh)
        flags.append(flag)
        state = {**state, **updates}
    return state, jnp.stack(flags)


def _in_order(blocks: Sequence[GibbsBlock], key, reads: str, given: State | None, draw):
    """`draw(block, key, state)` for every block in dependency order (by `reads`), one key
    per block (by plan position); blocks whose variables are all `given` keep them."""
    given = given or {}
    keys = dict(zip([b.name for b in blocks], jax.random.split(key, len(blocks)), strict=True))
    state: State = {}
    for block in init_order(blocks, writers(blocks), reads):
        if block.writes and all(v in given for v in block.writes):
            updates = {v: given[v] for v in block.writes}
        else:
            updates = draw(block, keys[block.name], state)
        state = {**state, **updates}
    return state


def init_state(blocks: Sequence[GibbsBlock], key, data: Data, given: State | None = None, *,
               mesh: Mesh | None = None, step: Callable = init_block) -> State:
    """Every block's `init` in dependency order (`init_reads`) through `step`
    (`init_block` or a compiled form), keeping the variables in `given`."""
    return _in_order(blocks, key, "init_reads", given,
                     lambda block, key, state: step(block, key, data, state, mesh=mesh))


def sample_prior(blocks: Sequence[GibbsBlock], key, data: Data,
                 given: State | None = None) -> State:
    """Every block's `sample_prior` in dependency order (`prior_reads`), parents first; `data`
    gives shapes (the mask, and any data a prior reads). Keeps the variables in `given`."""
    return _in_order(blocks, key, "prior_reads", given, lambda block, key, state: call_block(
        block, "sample_prior", key, data, state))


def sample_data(blocks: Sequence[GibbsBlock], key, state: State, data: Data) -> Data:
    """`data` with every observation block's `sample_data` given `state`, in plan order. A
    simulated variable that a block of the plan writes (x in an SLDS) is not data: dropped."""
    owned = writers(blocks)
    keys = jax.random.split(key, len(blocks))
    for block, block_key in zip(blocks, keys, strict=True):
        simulated = call_block(block, "sample_data", block_key, data, state)
        data = {**data, **{k: v for k, v in simulated.items() if k not in owned}}
    return data


def log_joint(blocks: Sequence[GibbsBlock], data: Data, state: State, *,
              chunks: RecordingChunks | None = None) -> Float[Array, ""]:
    """log p(data, state): the sum of every block's `log_prob` (`block_log_prob`, its sums
    over recordings in `chunks`)."""
    return sum(block_log_prob(block, data, state, chunks=chunks) for block in blocks)
