"""Transition-matrix blocks: weak-limit sticky HDP and sticky Dirichlet."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from moseq.core.block import GibbsBlock, recording_span
from moseq.ops.checks import check_positive
from moseq.ops.densities import dirichlet_log_prob
from moseq.ops.transitions import (
    count_transitions,
    init_hdp_transitions,
    sample_dir_transitions,
    sample_hdp_transitions,
)


def _check_num_states(num_states) -> None:
    if not isinstance(num_states, int) or num_states < 1:
        raise ValueError(f"`num_states` must be a positive int; got {num_states!r}.")


class HDPTransitions(GibbsBlock):
    """Weak-limit sticky HDP transition matrix.

    Variables: `betas` (K,) global state usages, `pi` (K, K) transition matrix.
    Prior: betas ~ Dir(gamma/K), pi_i ~ Dir(alpha * betas + kappa * e_i).
    Conditional: given the transition counts of `z` (destinations within the recording span:
    a masked frame inside a recording is a missing observation, its state still chained), auxiliary
    table counts with the sticky correction, then betas, then pi (`moseq.ops.transitions`).
    """

    num_states: int = eqx.field(static=True)
    alpha: float = 5.7
    kappa: float = 1e6
    gamma: float = 1e3

    writes: ClassVar = ("betas", "pi")
    reads: ClassVar = ("z", "mask", "betas")

    def __check_init__(self):
        _check_num_states(self.num_states)
        check_positive("alpha", self.alpha)
        check_positive("kappa", self.kappa, allow_zero=True)
        check_positive("gamma", self.gamma)

    def resample(self, key, data, state):
        counts = count_transitions(self.num_states, state["z"], recording_span(data["mask"]))
        betas, pi = sample_hdp_transitions(
            key, counts, state["betas"], self.alpha, self.kappa, self.gamma
        )
        return {"betas": betas, "pi": pi}

    def sample_prior(self, key, state):
        betas, pi = init_hdp_transitions(key, self.num_states, self.alpha, self.kappa, self.gamma)
        return {"betas": betas, "pi": pi}

    def log_prob(self, data, state):
        betas, pi = state["betas"], state["pi"]
        sticky = self.kappa * jnp.eye(self.num_states, dtype=pi.dtype)
        return dirichlet_log_prob(betas, self.gamma / self.num_states) + dirichlet_log_prob(
            pi, self.alpha * betas + sticky
        )


class StickyDirTransitions(GibbsBlock):
    """Sticky Dirichlet transition matrix, `pi` (K, K): pi_i ~ Dir(beta + kappa * e_i).

    Conditional: pi_i ~ Dir(beta + n_i + kappa * e_i) with the transition counts n of `z`.
    """

    num_states: int = eqx.field(static=True)
    beta: float = 1.0
    kappa: float = 1e6

    writes: ClassVar = ("pi",)
    reads: ClassVar = ("z", "mask")

    def __check_init__(self):
        _check_num_states(self.num_states)
        check_positive("beta", self.beta)
        check_positive("kappa", self.kappa, allow_zero=True)

    def resample(self, key, data, state):
        counts = count_transitions(self.num_states, state["z"], recording_span(data["mask"]))
        return {"pi": sample_dir_transitions(key, counts, self.beta, self.kappa)}

    def sample_prior(self, key, state):
        counts = jnp.zeros((self.num_states, self.num_states), jnp.result_type(int))
        return {"pi": sample_dir_transitions(key, counts, self.beta, self.kappa)}

    def log_prob(self, data, state):
        pi = state["pi"]
        return dirichlet_log_prob(pi, self.beta + self.kappa * jnp.eye(self.num_states,
                                                                        dtype=pi.dtype))


