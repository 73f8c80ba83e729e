"""The Gibbs block protocol: an Equinox module that owns some variables of a model.

A model's state is a dict mapping variable names to arrays; its data is another dict that no
block changes. A block's fields are its hyperparameters and its wiring to other blocks (its
providers). It declares the variables it writes (`writes`), those it reads from the state or
the data (`reads`), which of its variables carry a leading recording axis (`per_recording`)
and what its `init` and `sample_prior` read (`init_reads`, `prior_reads`). Every method is
pure: it returns a dict of new values for `writes` and never changes its inputs.

The declarations are load-bearing: a concrete block class without `writes` is refused when
it is defined, and the scheduler hands each method only the variables it declares (see
`declared_inputs`), so an undeclared read fails when the sweep is traced.

To write a new block, subclass `GibbsBlock` (or a shipped block, to change one piece of it)
and implement the abstract methods; `moseq.testing` checks the contract and the maths.
"""

import abc
import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

State = dict[str, Array]
Data = dict[str, Array]

RECORDING_INDEX = "recording_index"
"""Data key of the global index of every recording, used to derive per-recording keys."""

METHODS = ("init", "resample", "sample_prior", "log_prob", "sample_data")
"""The block methods the scheduler calls, each given only its declared inputs."""


class GibbsBlock(eqx.Module):
    """A group of variables resampled together from their full conditional.

    Class attributes to set in a subclass (`writes` is required, even if empty):
        writes: names of the variables the block owns.
        reads: names of the state or data variables its `resample`, `log_prob` and
            `sample_data` read (its own variables and its providers' need not be listed).
        init_reads: names of the state variables its `init` reads (default: none, a prior
            draw); `init` also sees the data its other methods read.
        prior_reads: its parents in the generative model, which `sample_prior` reads.
        per_recording: the subset of `writes` with a leading recording axis (N, ...).
        recording_wise: True if `init` and `resample` draw every recording from its own
            data and per-recording variables (and the global ones) alone, so the scheduler
            may call them on chunks of recordings to bound their memory (default False).

    Field:
        name: the block's name in a plan (default: its class name), used by `frozen=`,
            `scheduler.block(name)`, provider references and error messages. Give two blocks
            of one class different names to put both in one plan.

    Providers: a field that holds another block (e.g. `HMMStates.likelihood`) makes that
    block a provider, whose methods this one calls. A plan holds each block once: the
    scheduler replaces the field by a `Provider` reference to the plan's block of that name
    and attaches the plan's block whenever a method runs, so one edit of a provider reaches
    every block that uses it.
    """

    # Not `from __future__ import annotations` in this module: Equinox reads this annotation.
    writes: eqx.AbstractClassVar[tuple[str, ...]]
    reads: ClassVar[tuple[str, ...]] = ()
    init_reads: ClassVar[tuple[str, ...]] = ()
    prior_reads: ClassVar[tuple[str, ...]] = ()
    per_recording: ClassVar[tuple[str, ...]] = ()
    recording_wise: ClassVar[bool] = False

    name: str = eqx.field(default="GibbsBlock", static=True, kw_only=True)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__.get("__annotations__", {}):
            # Each class's own default name: its class name.
            cls.__annotations__ = {**cls.__dict__.get("__annotations__", {}), "name": str}
            cls.name = eqx.field(default=cls.__name__, static=True, kw_only=True)
        if _is_concrete(cls) and not any("writes" in vars(c) for c in cls.__mro__
                                         if c is not GibbsBlock):
            raise TypeError(
                f"{cls.__name__} does not declare `writes`, the variables it owns; add e.g. "
                f"`writes: ClassVar = ('mu',)` to the class (an empty tuple if it owns none).")

    def init(self, key: PRNGKeyArray, data: Data, state: State) -> State:
        """First values of the block's variables; by default a draw from `sample_prior`."""
        return self.sample_prior(key, state | data)

    @abc.abstractmethod
    def resample(self, key: PRNGKeyArray, data: Data, state: State) -> State:
        """New values drawn from the full conditional of the block's variables."""

    @abc.abstractmethod
    def sample_prior(self, key: PRNGKeyArray, state: State) -> State:
        """The block's variables drawn from their prior given their parents, without data.

        `state` holds the parents (and, for blocks that need shapes such as the number of
        recordings and frames, the data arrays or the mask).
        """

    @abc.abstractmethod
    def log_prob(self, data: Data, state: State) -> Float[Array, ""]:
        """Log density of the block's variables given their parents (observation blocks:
        of the data given the state). The sum over the blocks of a model is its log joint."""

    def check_data(self, data: Data) -> None:
        """Raise a ValueError naming the argument if `data` cannot feed this block. Called by
        the scheduler before any compilation; the default accepts anything."""

    def check_init_data(self, data: Data) -> None:
        """Raise a ValueError naming the fix if `data` cannot initialise this block's variables
        (e.g. too few frames for a PCA); may warn about poor data. Called by the scheduler's
        `init`, before any compilation, for the blocks it initialises (not those whose
        variables are given); the default accepts anything."""

    def prepare_data(self, data: Data) -> Data:
        """Host-side preparation of the user's data before validation and compilation (e.g.
        filling gaps, adding defaults for optional arrays); returns a new dict. The default
        returns `data` unchanged."""
        return data

    def sample_data(self, key: PRNGKeyArray, state: State) -> Data:
        """Observation blocks: simulate the data they score, given the state (merged with the
        known data, such as the mask; used by simulators and joint-distribution tests).
        Other blocks return nothing."""
        return {}

    def dependencies(self) -> "tuple[GibbsBlock | Provider, ...]":
        """The providers: the blocks (or `Provider` references) held in the block's fields."""
        return tuple(value for _, value in provider_fields(self))


class Provider(eqx.Module):
    """A reference, inside a plan, to the plan's block called `name`.

    `GibbsScheduler` stores each block once and puts these in the provider fields of the
    blocks that use it; `scheduler.block(name)` returns a block with its providers attached.
    A block built with a `Provider` field can only run inside a plan.
    """

    name: str = eqx.field(static=True)

    def __getattr__(self, attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise AttributeError(
            f"{attribute!r}: this is a reference to the plan's block {self.name!r}, not the "
            "block itself; take blocks with their providers attached from "
            "`scheduler.block(name)` (or `scheduler.bound_blocks`), not `scheduler.blocks`.")


def provider_fields(block: GibbsBlock) -> tuple[tuple[str, GibbsBlock | Provider], ...]:
    """(field name, provider) for every field of `block` that holds a block or a reference."""
    return tuple((field.name, getattr(block, field.name)) for field in dataclasses.fields(block)
                 if isinstance(getattr(block, field.name, None), GibbsBlock | Provider))


def readable(block: GibbsBlock) -> frozenset[str]:
    """What `resample`, `log_prob` and `sample_data` may read: the block's `reads` and
    `writes` and, through its providers (transitively), theirs."""
    names = set(block.reads) | set(block.writes)
    for provider in block.dependencies():
        if isinstance(provider, Provider):
            raise TypeError(f"{block.name}'s provider {provider.name!r} is a reference; use the "
                            "block with its providers attached (`scheduler.block(name)`).")
        names |= readable(provider)
    return frozenset(names)


def declared_inputs(block: GibbsBlock, method: str) -> tuple[frozenset[str], frozenset[str]]:
    """(data names, state names) that `method` is given: what it declares.

    `resample`, `log_prob`, `sample_data`: `readable(block)`, in the data and in the state.
    `init`: state variables in `init_reads`; data in `readable`, `init_reads` or
    `prior_reads`. `sample_prior` (called with the state merged into the data): `prior_reads`.
    The recording index is always given.
    """
    if method == "init":
        names = readable(block) | set(block.init_reads) | set(block.prior_reads)
        return names | {RECORDING_INDEX}, frozenset(block.init_reads)
    if method == "sample_prior":
        names = frozenset(block.prior_reads) | {RECORDING_INDEX}
        return names, names
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}; got {method!r}.")
    names = readable(block) | {RECORDING_INDEX}
    return names, names


def declaration(method: str) -> str:
    """The class attribute that declares what `method` reads."""
    return {"init": "init_reads", "sample_prior": "prior_reads"}.get(method, "reads")


def visible(tree: Mapping[str, Array], names: frozenset[str]) -> dict:
    """The entries of `tree` named in `names` (a new dict)."""
    return {k: v for k, v in tree.items() if k in names}


def _is_concrete(cls) -> bool:
    """Whether `cls` implements every abstract method (it can be instantiated)."""
    return not any(getattr(getattr(cls, name, None), "__isabstractmethod__", False)
                   for name in dir(cls))


def recording_keys(key: PRNGKeyArray, data: Data, num_recordings: int) -> PRNGKeyArray:
    """One key per recording, folded from the recording's global index.

    With the scheduler's `recording_index` in `data`, the keys do not depend on how the
    recordings are padded or spread over devices, so the chain is the same on 1 or 8 devices.
    """
    index = data.get(RECORDING_INDEX)
    if index is None:
        index = jnp.arange(num_recordings)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index)


def recording_span(mask: Float[Array, "N T"]) -> Array:
    """(N, T) bool: frames up to each recording's last unmasked frame. Frames inside it are
    modelled (masked ones as missing observations); frames after it are padding, and a
    padded recording (all masked) has an empty span."""
    observed = jnp.asarray(mask) > 0
    return jnp.flip(jnp.cumsum(jnp.flip(observed, -1), -1), -1) > 0
