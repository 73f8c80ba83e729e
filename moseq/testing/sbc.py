"""Simulation-based calibration of a Gibbs sampler (Talts, Betancourt, Simpson, Vehtari and
Gelman, 2018, arXiv:1804.06788).

Each replicate draws a "true" state and data from the joint (`sample_prior`, then
`sample_data`), runs the sampler on that data from the model's own `init`, and ranks the
true value of every test function among its values at L recorded sweeps. If the sampler
draws from the posterior, and its recorded draws are close to independent, the rank is
uniform on {0, ..., L}; a chi-square test of the binned ranks (with a Holm correction over
the test functions) gives the verdict.

SBC complements the Geweke test: it exercises `init` and a chain that starts away from the
truth, so it also catches samplers that do not mix or converge in `warmup` sweeps. Its
shapes tell what is wrong: a U-shaped histogram means the posterior draws are too narrow
(overconfident) or too autocorrelated; a hump, too wide; a slope, biased. Autocorrelation
alone produces a U: thin the chain (`thin`) until the recorded draws are nearly independent
before blaming the sampler. Use a few hundred replicates, L of 20 to 100 draws and about
R / 20 bins (the default), so that each bin expects at least ~20 ranks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaincc

from moseq.core import gibbs
from moseq.core.block import GibbsBlock
from moseq.core.scheduler import GibbsScheduler, as_key
from moseq.testing.joint import (
    TestFunction,
    batched_keys,
    compile_test,
    default_test_functions,
    evaluate,
    fixed_values,
    joint_draw,
    named_functions,
    setup_test,
)
from moseq.testing.verdict import Verdict, multiple_comparison, pyplot

__all__ = ["SBCReport", "SBCRow", "sbc", "rank_uniformity"]


def _replicate_ranks(model, keys, data, fixed_key, *, functions, frozen, init, warmup,
                     num_draws, thin):
    """Ranks of the truth among `num_draws` recorded draws: keys (batches, size) -> (R, F)."""
    fixed = fixed_values(model, fixed_key, data, frozen)

    def replicate(key):
        truth_key, init_key, chain_key, tie_key = jax.random.split(key, 4)
        sim_data, truth = joint_draw(model, truth_key, data, fixed)
        if init == "prior":
            _, state = joint_draw(model, init_key, data, fixed)
        else:
            state = {**gibbs.init_state(model.bound_blocks, init_key, sim_data), **fixed}
        state = {name: state[name].astype(truth[name].dtype) for name in truth}

        def sweep(state, sweep_key):
            return gibbs.sweep(model.bound_blocks, sweep_key, sim_data, state, frozen)[0], None

        def record(state, record_key):
            state, _ = jax.lax.scan(sweep, state, jax.random.split(record_key, thin))
            return state, evaluate(model, functions, sim_data, state)

        warm_key, run_key = jax.random.split(chain_key)
        if warmup:
            state, _ = jax.lax.scan(sweep, state, jax.random.split(warm_key, warmup))
        _, draws = jax.lax.scan(record, state, jax.random.split(run_key, num_draws))
        true_values = evaluate(model, functions, sim_data, truth)
        below = jnp.sum(draws < true_values, axis=0)
        ties = jnp.sum(draws == true_values, axis=0)
        # Ties (discrete functions) are broken uniformly at random, as SBC requires.
        broken = jnp.floor(jax.random.uniform(tie_key, ties.shape) * (ties + 1))
        finite = jnp.all(jnp.isfinite(draws), axis=0) & jnp.isfinite(true_values)
        return jnp.where(finite, below + broken.astype(below.dtype), -1)

    ranks = jax.lax.map(jax.vmap(replicate), keys)
    return ranks.reshape(-1, ranks.shape[-1])


_ranks_call = compile_test(_replicate_ranks)


def rank_uniformity(ranks, num_draws: int, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Chi-square statistics and p-values of the uniformity of ranks in {0, ..., num_draws}
    (columns tested separately) over `num_bins` bins of (nearly) equal width."""
    ranks = np.asarray(ranks)
    if ranks.ndim == 1:
        ranks = ranks[:, None]
    values = num_draws + 1
    num_bins = int(min(max(num_bins, 2), values))
    bin_of = np.arange(values) * num_bins // values
    expected_fraction = np.bincount(bin_of, minlength=num_bins) / values
    statistics, p_values = [], []
    for column in ranks.T:
        valid = column[(column >= 0) & (column <= num_draws)]
        if valid.size < column.size or valid.size == 0:
            statistics.append(np.inf)
            p_values.append(0.0)
            continue
        observed = np.bincount(bin_of[valid.astype(int)], minlength=num_bins)
        expected = expected_fraction * valid.size
        statistic = float(np.sum((observed - expected) ** 2 / expected))
        statistics.append(statistic)
        p_values.append(float(gammaincc((num_bins - 1) / 2.0, statistic / 2.0)))
    return np.asarray(statistics), np.asarray(p_values)


class SBCRow(NamedTuple):
    name: str
    chi2: float
    p: float
    passed: bool


@dataclasses.dataclass(frozen=True, repr=False)
class SBCReport(Verdict):
    """The outcome of `sbc`: ranks (replicates, functions) in {0..num_draws} (-1 where a
    value was not finite), their chi-square uniformity tests and the corrected verdict."""

    ranks: np.ndarray
    num_draws: int
    num_bins: int
    chi2: np.ndarray
    p: np.ndarray

    @property
    def table(self) -> tuple[SBCRow, ...]:
        return tuple(SBCRow(n, float(c), float(p), not bool(r)) for n, c, p, r in
                     zip(self.names, self.chi2, self.p, self.rejected, strict=True))

    def histogram(self, name: str) -> np.ndarray:
        """Counts of the ranks of test function `name` in the test's bins."""
        column = self.ranks[:, self.names.index(name)]
        bin_of = np.arange(self.num_draws + 1) * self.num_bins // (self.num_draws + 1)
        return np.bincount(bin_of[column[column >= 0]], minlength=self.num_bins)

    def __repr__(self) -> str:
        width = self._name_width()
        lines = [self._heading("SBC", f"{self.ranks.shape[0]} replicates, ranks among "
                               f"{self.num_draws} draws in {self.num_bins} bins"),
                 f"{'test function':<{width}}  {'chi2':>9}  {'p':>9}  pass  histogram"]
        for row in self.table:
            counts = " ".join(str(c) for c in self.histogram(row.name))
            lines.append(f"{row.name:<{width}}  {row.chi2:9.2f}  {row.p:9.2e}  "
                         f"{'yes ' if row.passed else 'NO  '}  {counts}")
        return "\n".join(lines)

    def plot(self, path) -> None:
        """Save one rank histogram per test function, with the 99% band of uniform counts."""
        plt = pyplot()
        count = len(self.names)
        columns = min(count, 3)
        rows = -(-count // columns)
        figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows),
                                    squeeze=False)
        replicates = self.ranks.shape[0]
        fraction = 1.0 / self.num_bins
        spread = 2.576 * math.sqrt(replicates * fraction * (1 - fraction))
        for axis, name in zip(axes.ravel(), self.names, strict=False):
            counts = self.histogram(name)
            axis.bar(np.arange(self.num_bins), counts, width=1.0, color="C0")
            mean = replicates * fraction
            axis.axhspan(mean - spread, mean + spread, color="0.85", zorder=0)
            axis.set(title=name, xlabel="rank bin", ylabel="count")
        for axis in axes.ravel()[count:]:
            axis.set_visible(False)
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)


def sbc(
    model: GibbsScheduler | GibbsBlock,
    data_shapes: Mapping[str, Any],
    num_replicates: int = 200,
    num_sweeps: int = 100,
    test_functions: Mapping[str, TestFunction] | Sequence[TestFunction] | None = None,
    *,
    thin: int = 5,
    warmup: int = 20,
    num_bins: int | None = None,
    blocks: Sequence[str] | None = None,
    init: str = "init",
    alpha: float = 0.01,
    correction: str = "holm",
    batch_size: int = 64,
    seed: int = 0,
) -> SBCReport:
    """Simulation-based calibration of `model` (see the module docstring).

    Args:
        model: a `GibbsScheduler`, or one `GibbsBlock` (wrapped with its providers).
        data_shapes: the data that is not simulated, at least `"mask"` (N, T).
        num_replicates: R, independent (truth, data) pairs, each with its own chain.
        num_sweeps: sweeps after warmup per chain; every `thin`-th is recorded, so the rank
            is among L = num_sweeps // thin draws.
        test_functions: as in `geweke_test`. Default: `default_test_functions` with
            `label_invariant=True` (chains may settle on another labelling of the states,
            so label-dependent functions such as mean(z) fail SBC without any bug).
        warmup: sweeps discarded from each chain. init: "init" (the blocks' `init` from the
            data, as a fit starts) or "prior" (an independent prior draw).
        num_bins: bins of the chi-square test (default about R / 20, at most L + 1).
        blocks: test only these blocks; the others keep one prior draw (see `geweke_test`).
        alpha, correction: family-wise level, "holm" or "bonferroni". seed: int or key.
    """
    model, data, tested, frozen = setup_test(model, data_shapes, blocks)
    if init not in ("init", "prior"):
        raise ValueError(f"`init` must be 'init' or 'prior'; got {init!r}.")
    num_draws = num_sweeps // thin
    if num_draws < 1 or num_replicates < 2 or warmup < 0:
        raise ValueError("need num_sweeps >= thin >= 1, num_replicates >= 2 and warmup >= 0.")
    if test_functions is None:
        test_functions = default_test_functions(model, data, tested, label_invariant=True)
    functions = named_functions(test_functions)
    fixed_key, rank_key = jax.random.split(as_key(seed))
    ranks = np.asarray(_ranks_call(
        model, batched_keys(rank_key, num_replicates, batch_size), data, fixed_key,
        functions=functions, frozen=frozen, init=init, warmup=warmup, num_draws=num_draws,
        thin=thin,
    ))[:num_replicates]
    bins = num_bins or max(2, min(num_draws + 1, num_replicates // 20))
    bins = int(min(bins, num_draws + 1))
    statistics, p_values = rank_uniformity(ranks, num_draws, bins)
    return SBCReport(
        names=tuple(name for name, _ in functions), ranks=ranks, num_draws=num_draws,
        num_bins=bins, chi2=statistics, p=p_values,
        rejected=multiple_comparison(p_values, alpha, correction), alpha=alpha,
        correction=correction,
    )
