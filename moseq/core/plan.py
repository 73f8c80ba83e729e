"""Validation of a Gibbs plan: who writes what, who reads what, which block provides what to
whom, and in which order to init.

A plan holds each block once, under its `name`. Blocks that call other blocks' methods (their
providers) hold them in fields; `bind_plan` attaches the plan's own block of each provider's
name, so one edit of a provider reaches every block that uses it, and `refer` replaces the
provider fields by `Provider` references, so the plan's pytree holds no copies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax

from moseq.core.block import RECORDING_INDEX, GibbsBlock, Provider
from moseq.ops.checks import is_concrete


class PlanError(ValueError):
    """A list of blocks that cannot form a Gibbs sampler, with what to change."""


def _map_providers(block: GibbsBlock, fn: Callable) -> GibbsBlock:
    """`block` with every block or `Provider` held in its fields replaced by `fn(it)`."""
    is_provider = lambda x: x is not block and isinstance(x, GibbsBlock | Provider)
    return jax.tree.map(lambda x: fn(x) if is_provider(x) else x, block, is_leaf=is_provider)


def refer(block: GibbsBlock) -> GibbsBlock:
    """`block` with its providers replaced by `Provider` references to their names."""
    return _map_providers(block, lambda provider: Provider(provider.name))


def _same_block(a: GibbsBlock, b: GibbsBlock) -> bool:
    """Whether two blocks are the same block (providers compared by name)."""
    if a is b:
        return True
    a, b = refer(a), refer(b)
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    if not (is_concrete(a) and is_concrete(b)):
        return True  # traced values (a plan rebuilt inside jit): the structure must do
    return bool(eqx.tree_equal(a, b))


def bind_plan(blocks: Sequence[GibbsBlock]) -> tuple[GibbsBlock, ...]:
    """The blocks, in order, with the plan's block of each provider's name attached.

    Providers may be given as blocks (which must equal the plan's block of their name) or as
    `Provider` references. Raises `PlanError` for an entry that is not a block, two blocks with
    one name, a provider missing from the plan or different from the plan's block of its
    name, and providers that depend on each other in a cycle.
    """
    plan: dict[str, GibbsBlock] = {}
    for block in blocks:
        if not isinstance(block, GibbsBlock):
            raise PlanError(f"every entry of `blocks` must be a GibbsBlock; got {block!r}.")
        if block.name in plan:
            raise PlanError(
                f"two blocks are named {block.name!r}; block names must be unique because "
                "`frozen=`, providers and error messages refer to them (pass name=... to "
                "one of them).")
        plan[block.name] = block
    bound: dict[str, GibbsBlock] = {}

    def attach(name: str, path: tuple[str, ...]) -> GibbsBlock:
        if name in bound:
            return bound[name]
        if name in path:
            raise PlanError(f"providers form a cycle: {' -> '.join((*path, name))}.")
        block = plan[name]

        def resolve(provider):
            if provider.name not in plan:
                raise PlanError(
                    f"{name} needs {provider.name} (it calls its methods, e.g. for "
                    f"likelihoods), but {provider.name} is not in the plan; add it to `blocks`.")
            if isinstance(provider, GibbsBlock) and not _same_block(provider, plan[provider.name]):
                raise PlanError(
                    f"{name} holds a {provider.name} that differs from the plan's block of that "
                    f"name; build {name} with the plan's own block (or a "
                    f"moseq.core.Provider({provider.name!r}) reference), so both are one block.")
            return attach(provider.name, (*path, name))

        bound[name] = _map_providers(block, resolve)
        return bound[name]

    return tuple(attach(block.name, ()) for block in blocks)


def writers(blocks: Sequence[GibbsBlock]) -> dict[str, GibbsBlock]:
    """The block that writes each variable (the last one, if a plan has two: validate first)."""
    return {variable: block for block in blocks for variable in block.writes}


def validate_plan(blocks: Sequence[GibbsBlock], data_keys: Sequence[str]) -> dict[str, GibbsBlock]:
    """Check the plan and return the writer (providers attached) of every state variable.

    Raises `PlanError` for what `bind_plan` refuses, a variable with two writers, a block
    writing a data variable, a per-recording variable the block does not write, and a read
    with no writer that is not data.
    """
    blocks = bind_plan(blocks)
    owners: dict[str, GibbsBlock] = {}
    for block in blocks:
        for variable in block.writes:
            if variable in data_keys or variable == RECORDING_INDEX:
                raise PlanError(
                    f"{block.name} writes {variable!r}, which is data; blocks never change "
                    "data. Remove it from `data_keys` if it is a latent variable."
                )
            if variable in owners:
                raise PlanError(
                    f"variable {variable!r} is written by both {owners[variable].name} and "
                    f"{block.name}; keep exactly one writer per variable."
                )
            owners[variable] = block
        missing = set(block.per_recording) - set(block.writes)
        if missing:
            raise PlanError(f"{block.name}.per_recording names {sorted(missing)}, which it "
                            "does not write.")
    available = set(owners) | set(data_keys) | {RECORDING_INDEX}
    for block in blocks:
        for variable in (*block.reads, *block.init_reads):
            if variable not in available:
                raise PlanError(
                    f"{block.name} reads {variable!r}, but no block writes it and it is not in "
                    f"`data_keys` {tuple(data_keys)}; add a block that writes {variable!r} or "
                    "pass it as data."
                )
    return owners


def init_order(
    blocks: Sequence[GibbsBlock], owners: dict[str, GibbsBlock], reads: str = "init_reads"
) -> tuple[GibbsBlock, ...]:
    """Blocks ordered so that each runs after the writers of what it reads (`init_reads`, or
    `prior_reads` for drawing from the prior); `owners` maps variables to their writers.

    Ties keep the plan's order. Raises `PlanError` on a cycle.
    """
    remaining = list(blocks)
    done: list[GibbsBlock] = []
    while remaining:
        for block in remaining:
            needs = {owners[v].name for v in getattr(block, reads) if v in owners}
            needs -= {block.name}
            if needs <= {b.name for b in done}:
                done.append(block)
                remaining.remove(block)
                break
        else:
            cycle = ", ".join(
                f"{b.name} (needs {sorted(v for v in getattr(b, reads) if v in owners)})"
                for b in remaining
            )
            raise PlanError(
                f"the blocks' `{reads}` form a cycle: {cycle}; every block must be computable "
                "from blocks before it."
            )
    return tuple(done)
