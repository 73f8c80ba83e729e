"""Validation of a Gibbs plan: who writes what, who reads what, and in which order to init."""

from __future__ import annotations

from collections.abc import Sequence

from moseq.core.block import RECORDING_INDEX, GibbsBlock


class PlanError(ValueError):
    """A list of blocks that cannot form a Gibbs sampler, with what to change."""


def _same_block(a: GibbsBlock, b: GibbsBlock) -> bool:
    return a is b or (type(a) is type(b) and a.name == b.name)


def validate_plan(blocks: Sequence[GibbsBlock], data_keys: Sequence[str]) -> dict[str, GibbsBlock]:
    """Check the plan and return the writer of every state variable.

    Raises `PlanError` for: an entry that is not a block, two blocks with one name, a variable
    with two writers, a block writing a data variable, a read with no writer that is not data,
    and a block that calls a provider (e.g. of likelihoods) missing from the plan.
    """
    names: dict[str, GibbsBlock] = {}
    writers: dict[str, GibbsBlock] = {}
    for block in blocks:
        if not isinstance(block, GibbsBlock):
            raise PlanError(f"every entry of `blocks` must be a GibbsBlock; got {block!r}.")
        if block.name in names:
            raise PlanError(
                f"two blocks are named {block.name!r}; block names must be unique because "
                "`frozen=` and error messages refer to them."
            )
        names[block.name] = block
        for variable in block.writes:
            if variable in data_keys or variable == RECORDING_INDEX:
                raise PlanError(
                    f"{block.name} writes {variable!r}, which is data; blocks never change "
                    "data. Remove it from `data_keys` if it is a latent variable."
                )
            if variable in writers:
                raise PlanError(
                    f"variable {variable!r} is written by both {writers[variable].name} and "
                    f"{block.name}; keep exactly one writer per variable."
                )
            writers[variable] = block
        missing = set(block.per_recording) - set(block.writes)
        if missing:
            raise PlanError(f"{block.name}.per_recording names {sorted(missing)}, which it "
                            "does not write.")
    available = set(writers) | set(data_keys) | {RECORDING_INDEX}
    for block in blocks:
        for provider in block.dependencies():
            if not any(_same_block(provider, other) for other in blocks):
                raise PlanError(
                    f"{block.name} needs {provider.name} (it calls its methods, e.g. for "
                    f"likelihoods), but {provider.name} is not in the plan; add it to `blocks`."
                )
        for variable in (*block.reads, *block.init_reads):
            if variable not in available:
                raise PlanError(
                    f"{block.name} reads {variable!r}, but no block writes it and it is not in "
                    f"`data_keys` {tuple(data_keys)}; add a block that writes {variable!r} or "
                    "pass it as data."
                )
    return writers


def init_order(
    blocks: Sequence[GibbsBlock], writers: dict[str, GibbsBlock], reads: str = "init_reads"
) -> tuple[GibbsBlock, ...]:
    """Blocks ordered so that each runs after the writers of what it reads (`init_reads`, or
    `prior_reads` for drawing from the prior).

    Ties keep the plan's order. Raises `PlanError` on a cycle.
    """
    remaining = list(blocks)
    done: list[GibbsBlock] = []
    while remaining:
        for block in remaining:
            needs = {writers[v].name for v in getattr(block, reads) if v in writers}
            needs -= {block.name}
            if needs <= {b.name for b in done}:
                done.append(block)
                remaining.remove(block)
                break
        else:
            cycle = ", ".join(
                f"{b.name} (needs {sorted(v for v in getattr(b, reads) if v in writers)})"
                for b in remaining
            )
            raise PlanError(
                f"the blocks' `{reads}` form a cycle: {cycle}; every block must be computable "
                "from blocks before it."
            )
    return tuple(done)
