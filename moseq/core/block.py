"""The Gibbs block protocol: an Equinox module that owns some variables of a model.

A model's state is a dict mapping variable names to arrays; its data is another dict that no
block changes. A block's fields are its hyperparameters and its wiring to other blocks. It
declares the variables it writes (`writes`), those it reads from the state or the data
(`reads`), which of its variables carry a leading recording axis (`per_recording`) and what
its `init` needs (`init_reads`). Every method is pure: it returns a dict of new values for
`writes` and never changes its inputs.

To write a new block, subclass `GibbsBlock` (or a shipped block, to change one piece of it)
and implement the four methods; `moseq.testing` checks the contract and the maths.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

State = dict[str, Array]
Data = dict[str, Array]

RECORDING_INDEX = "recording_index"
"""Data key of the global index of every recording, used to derive per-recording keys."""


class GibbsBlock(eqx.Module):
    """A group of variables resampled together from their full conditional.

    Class attributes to set in a subclass:
        writes: names of the variables the block owns.
        reads: names of the state or data variables its `resample` and `log_prob` read.
        init_reads: names its `init` reads (defaults to none: a prior draw).
        prior_reads: its parents in the generative model, which `sample_prior` reads.
        per_recording: the subset of `writes` with a leading recording axis (N, ...).
    """

    writes: ClassVar[tuple[str, ...]] = ()
    reads: ClassVar[tuple[str, ...]] = ()
    init_reads: ClassVar[tuple[str, ...]] = ()
    prior_reads: ClassVar[tuple[str, ...]] = ()
    per_recording: ClassVar[tuple[str, ...]] = ()

    @property
    def name(self) -> str:
        """Name used in plans, error messages and `frozen=`: the class name."""
        return type(self).__name__

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

    def dependencies(self) -> tuple[GibbsBlock, ...]:
        """Blocks whose methods this block calls (likelihood providers); they must be
        in the same plan."""
        return ()


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
