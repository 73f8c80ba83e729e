"""What the joint-distribution tests share: draws of (data, state) from a model's joint,
test functions of them, and compiling a whole test as one program.

`geweke_test` and `sbc` are built from these; a new test of a sampler can be too. The model
is a `GibbsScheduler` (or one block, wrapped with its providers by `as_scheduler`); every
draw goes through the functional core (`moseq.core.gibbs`), block by block as a sweep does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from moseq.core import gibbs
from moseq.core.block import Data, GibbsBlock, State
from moseq.core.plan import bind_plan, validate_plan
from moseq.core.scheduler import GibbsScheduler, as_key

TestFunction = Callable[[dict], Any]
"""A test function maps `variables` (the state merged with the data) to a scalar."""

__all__ = [
    "COMPILER_OPTIONS",
    "LOG_JOINT",
    "TestFunction",
    "as_data",
    "as_scheduler",
    "batched_keys",
    "compile_test",
    "default_test_functions",
    "evaluate",
    "fixed_values",
    "joint_draw",
    "named_functions",
    "setup_test",
    "simulated_shapes",
    "tested_blocks",
]


# ---- test functions ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Moment:
    """mean(variables[name] ** power) (hashable, so compiled tests are reused)."""

    name: str
    power: int

    def __call__(self, variables):
        value = jnp.asarray(variables[self.name])
        value = value.astype(jnp.result_type(value, float))
        return jnp.mean(value**self.power)


@dataclasses.dataclass(frozen=True)
class SwitchRate:
    """Fraction of consecutive entries along the last axis that differ."""

    name: str

    def __call__(self, variables):
        value = jnp.asarray(variables[self.name])
        return jnp.mean((value[..., 1:] != value[..., :-1]).astype(jnp.result_type(float)))


@dataclasses.dataclass(frozen=True)
class LargestOccupancy:
    """Fraction of the entries along the last axis that hold its most frequent value (the
    largest of a recording's sorted state occupancies), averaged over the other axes."""

    name: str

    def __call__(self, variables):
        ordered = jnp.sort(jnp.asarray(variables[self.name]), axis=-1)
        position = jnp.arange(ordered.shape[-1])
        starts = jnp.concatenate([jnp.ones_like(ordered[..., :1], bool),
                                  ordered[..., 1:] != ordered[..., :-1]], axis=-1)
        # Where the run of equal values that holds each entry starts; the longest run is the
        # most frequent value.
        run_start = jax.lax.cummax(jnp.where(starts, position, 0), axis=ordered.ndim - 1)
        longest = jnp.max(position - run_start + 1, axis=-1)
        return jnp.mean(longest / ordered.shape[-1]).astype(jnp.result_type(float))


@dataclasses.dataclass(frozen=True)
class _LogJoint:
    """Marker for the model's log joint, computed with the model's blocks."""

    def __call__(self, variables):
        raise TypeError("LOG_JOINT is evaluated by the test itself, with the model's blocks.")


LOG_JOINT = _LogJoint()
"""Use as a test function to compare the log joint `sum(block.log_prob)`."""


def default_test_functions(
    model: GibbsScheduler, data_shapes: Mapping[str, Any], blocks: Sequence[str] | None = None,
    log_joint: bool = True, label_invariant: bool = True,
) -> dict[str, TestFunction]:
    """The default test functions: for every variable the tested blocks write, the mean and
    mean of squares over all its entries (float variables), or (integer variables, the
    state labels, with a last axis longer than one) the switch rate and the largest state
    occupancy along the last axis (per recording); plus the log joint.

    All of them are invariant to a relabelling of the states (a mean over the states' entries
    is a sum over states): labels are what a sampler mixes over most slowly, so functions
    that follow a label (mean(z), pi[0, 0]) have the least power, and a posterior has one
    mode per labelling. `label_invariant=False` adds the mean of every integer variable, for
    integers that are not exchangeable labels."""
    model = as_scheduler(model, data_shapes)
    tested = tested_blocks(model, blocks)
    data = as_data(data_shapes)
    shapes = jax.eval_shape(lambda key: joint_draw(model, key, data)[1], jax.random.key(0))
    functions: dict[str, TestFunction] = {}
    for block in model.blocks:
        if block.name not in tested:
            continue
        for name in block.writes:
            spec = shapes[name]
            if jnp.issubdtype(spec.dtype, jnp.floating):
                functions[f"mean({name})"] = Moment(name, 1)
                functions[f"mean({name}^2)"] = Moment(name, 2)
                continue
            if not label_invariant:
                functions[f"mean({name})"] = Moment(name, 1)
            if spec.ndim >= 1 and spec.shape[-1] > 1:
                functions[f"switch_rate({name})"] = SwitchRate(name)
                functions[f"largest_occupancy({name})"] = LargestOccupancy(name)
    if log_joint:
        functions["log_joint"] = LOG_JOINT
    return functions


def named_functions(test_functions) -> tuple[tuple[str, TestFunction], ...]:
    """`(name, function)` pairs from a mapping or a sequence of named functions; names must
    be unique and the functions callable."""
    if isinstance(test_functions, Mapping):
        items = list(test_functions.items())
    else:
        items = [(getattr(fn, "__name__", f"g{i}"), fn) for i, fn in enumerate(test_functions)]
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"test function names must be unique; got {names}.")
    for name, fn in items:
        if not callable(fn):
            raise TypeError(f"test function {name!r} is not callable: {fn!r}.")
    return tuple(items)


def evaluate(model: GibbsScheduler, functions, data: Data, state: State) -> jax.Array:
    """(F,) the value of each named test function at (data, state)."""
    variables = {**data, **state}
    values = []
    for name, fn in functions:
        value = (gibbs.log_joint(model.bound_blocks, data, state) if isinstance(fn, _LogJoint)
                 else fn(variables))
        value = jnp.asarray(value)
        if value.shape != ():
            raise ValueError(f"test function {name!r} must return a scalar; got shape "
                             f"{value.shape}. Reduce it (e.g. jnp.mean) or split it.")
        values.append(value.astype(jnp.result_type(float)))
    return jnp.stack(values)


# ---- the model and its joint draws ------------------------------------------------------


def as_data(data_shapes: Mapping[str, Any]) -> Data:
    """The data that a test does not simulate, as arrays; checks its mask."""
    if "mask" not in data_shapes:
        raise ValueError("`data_shapes` must hold at least 'mask', an (N, T) array of 0/1 frame "
                         "weights that sets the number and length of the simulated recordings.")
    data = {k: jnp.asarray(v) for k, v in data_shapes.items()}
    if data["mask"].ndim != 2:
        raise ValueError(f"`data_shapes['mask']` must be (N, T); got {data['mask'].shape}.")
    return data


def as_scheduler(model: GibbsScheduler | GibbsBlock, data_shapes: Mapping[str, Any] = ()):
    """`model` as a mesh-free `GibbsScheduler`: a scheduler is rebuilt from its blocks (the
    tests run on one device); a single block is wrapped with its providers (transitively),
    its reads that no block writes counting as data."""
    if isinstance(model, GibbsScheduler):
        if model.mesh is None:
            return model
        return GibbsScheduler(model.blocks, model.data_keys)
    if isinstance(model, GibbsBlock):
        blocks, pending = {}, [model]
        while pending:
            block = pending.pop(0)
            if block.name not in blocks:
                blocks[block.name] = block
                pending.extend(block.dependencies())
        blocks = bind_plan(list(blocks.values()))
        written = {v for block in blocks for v in block.writes}
        reads = {v for block in blocks for v in (*block.reads, *block.init_reads)}
        data_keys = ("mask", *sorted((set(data_shapes) | reads) - written - {"mask"}))
        return GibbsScheduler(blocks, data_keys)
    raise TypeError(f"`model` must be a GibbsScheduler or a GibbsBlock; got {type(model)}.")


def tested_blocks(model: GibbsScheduler, blocks: Sequence[str] | None) -> tuple[str, ...]:
    """Names of the blocks to test (all when None); checks that the others can be held fixed:
    no variable of a held block may descend in the prior from a tested one."""
    if blocks is None:
        return model.block_names
    if isinstance(blocks, str):
        blocks = (blocks,)
    tested = tuple(blocks)
    unknown = set(tested) - set(model.block_names)
    if unknown:
        raise ValueError(f"`blocks` names {sorted(unknown)}, which are not blocks of this "
                         f"plan; choose from {model.block_names}.")
    # Holding a block fixed conditions the test on its variables. That is only a forward
    # simulation if no fixed variable descends (in the prior) from a tested one.
    owners = validate_plan(model.blocks, model.data_keys)
    descendants = {v for name in tested for v in model.block(name).writes}
    changed = True
    while changed:
        changed = False
        for block in model.blocks:
            if set(block.prior_reads) & descendants and not set(block.writes) <= descendants:
                descendants |= set(block.writes)
                changed = True
    for variable in descendants:
        writer = owners[variable].name
        if writer not in tested:
            raise ValueError(
                f"cannot hold {writer} fixed while testing {sorted(tested)}: its variable "
                f"{variable!r} depends on theirs in the prior, so fixing it is not a forward "
                f"simulation. Add {writer!r} to `blocks`."
            )
    return tested


class TestSetup(NamedTuple):
    """What a joint-distribution test runs on (`setup_test`)."""

    model: GibbsScheduler
    data: Data
    tested: tuple[str, ...]
    frozen: tuple[str, ...]


def setup_test(model: GibbsScheduler | GibbsBlock, data_shapes: Mapping[str, Any],
               blocks: Sequence[str] | None = None) -> TestSetup:
    """A test's model (a mesh-free scheduler), its fixed data, the tested blocks and those
    held at a prior draw, all checked before anything compiles."""
    model = as_scheduler(model, data_shapes)
    data = as_data(data_shapes)
    model.check_data({**data, **simulated_shapes(model, data)})
    tested = tested_blocks(model, blocks)
    return TestSetup(model, data, tested, tuple(sorted(set(model.block_names) - set(tested))))


def joint_draw(model: GibbsScheduler, key, data: Data, fixed: State | None = None):
    """One draw of (data, state) from the joint: `sample_prior` of every block, parents first,
    then every block's `sample_data`. Variables in `fixed` are kept (their blocks are not
    drawn). With `fixed` empty this is `model.simulate(key, data)`, draw for draw."""
    prior_key, data_key = jax.random.split(as_key(key))
    blocks = model.bound_blocks
    state = gibbs.sample_prior(blocks, prior_key, data, fixed)
    return gibbs.sample_data(blocks, data_key, state, dict(data)), state


def fixed_values(model: GibbsScheduler, key, data: Data, frozen: tuple[str, ...]) -> State:
    """One prior draw of the variables of the `frozen` blocks (traced, inside a program)."""
    if not frozen:
        return {}
    _, state = joint_draw(model, key, data)
    return {v: state[v] for block in model.blocks if block.name in frozen for v in block.writes}


def simulated_shapes(model: GibbsScheduler, data: Data) -> Data:
    """Zeros shaped like the data the model simulates (for `check_data` before compiling)."""
    shapes = jax.eval_shape(lambda key: joint_draw(model, key, data)[0], jax.random.key(0))
    return {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items() if k not in data}


def batched_keys(key, num: int, batch_size: int):
    """`num` keys laid out as (batches, size) with the fewest padding keys."""
    num_batches = -(-num // max(1, min(batch_size, num)))
    size = -(-num // num_batches)
    return jax.random.split(key, num_batches * size).reshape(num_batches, size)


# ---- compiling a test -------------------------------------------------------------------


COMPILER_OPTIONS = {"xla_backend_optimization_level": 0,
                    "xla_llvm_disable_expensive_passes": True}
"""XLA options of the test programs. They run once per test, so compilation dominates:
without optimisation a small AR-HMM compiles about twice as fast and still runs its few
thousand sweeps in about a second."""


def compile_test(fn: Callable) -> Callable:
    """`fn` compiled with `COMPILER_OPTIONS`: its arrays (the model's included) traced, the
    rest (test functions, block names, counts) static, by `eqx.filter_jit`."""
    return eqx.filter_jit(fn, compiler_options=COMPILER_OPTIONS)
