"""Geweke's joint-distribution test of a Gibbs sampler (Geweke, 2004, JASA 99:799-804).

A correct Gibbs sampler leaves the joint distribution p(state, data) invariant. Two
simulators of that joint are compared:

* marginal-conditional (MC): independent draws, state from the prior (`sample_prior` of
  every block, parents first), then data given the state (`sample_data`);
* successive-conditional (SC): chains that alternate one Gibbs sweep of the state given the
  data and a fresh simulation of the data given the state. Each chain starts from its own MC
  draw, so if every block samples its full conditional it never leaves the joint; a block
  that samples the wrong conditional makes it drift to another distribution.

The means of a few test functions g(state, data) under both simulators are compared by
Welch's t-test, and the verdict is corrected for the number of test functions (Holm, or
Bonferroni) at level `alpha`.

Standard errors. The SC values within a chain are autocorrelated, and for the functions a
sampler mixes over slowly (state labels, and the parameters tied to them) the
autocorrelation time can exceed what a few chains can show: a standard error from a
within-chain effective sample size is then too small, and a correct sampler fails. So the
SC side is many short independent chains, and its standard error comes from the spread of
the chains' means, which are independent whatever the mixing. The limit is the exact
restart design: `num_chains` restarts of one recorded step after `burn_in` sweeps each
(`num_sc_samples=num_chains`), whose final states are independent draws from the joint.
The report's `ess_sc` (the SC values' variance over the squared standard error) is at
least about the number of chains; a function with fewer than `min_ess` effective draws is
*inconclusive* (too few for its standard error and the normal approximation to be
trusted), never a failure: run more chains.

Choosing test functions. Defaults: the mean and the mean of squares of every float variable
written by the tested blocks, and for every integer variable (state labels) the switch rate
(fraction of consecutive entries along the last axis that differ) and the largest state
occupancy per recording; and the log joint. All are invariant to relabelling the states,
the slowest direction of a sampler and the one no bug needs to move. Good extra functions
are the ones a bug would move: a self-transition probability (the mean of the `pi`
diagonal), a state's dwell time, a regression coefficient that a prior term pulls on.
Avoid functions that rarely leave one value (the number of states used, when nearly every
draw uses them all): the chains' means are then skewed, few chains see the rare values,
and their spread understates the error.
Every test function needs a finite variance under the joint, or the z-scores mean nothing:
heavy-tailed priors (an inverse Wishart with nu_0 <= D + 3 has no finite variance) need
either a lighter-tailed prior in the test or bounded functions (e.g. `jnp.tanh`, `jnp.log`
of a determinant). Functions that are constant under both simulators (the mean of `pi`,
whose rows sum to one) carry no information; they are reported with z = 0.

Choosing sample sizes. The test detects a shift of a test function's mean of about
3.5 * sqrt(var / num_samples + var / ess_sc), and ess_sc grows with the number of chains
more surely than with their length. The defaults (2000 MC draws; 200 SC chains, each 10
sweeps and then 10 recorded steps) catch the usual bugs (a missing prior term, a wrong
count) on small models; keep the data small (few recordings, tens of frames) so the chains
move: with a lot of data the posterior is narrow, each sweep moves the state little and a
bug takes longer to show (a longer `burn_in` gives it longer, at no cost to the validity of
the test).

What the outcome means. "fail": at least one test function has a different mean under the
two simulators: some block's `resample` does not sample the full conditional implied by the
blocks' `sample_prior` and `sample_data` (a missing term, a wrong count, a dropped prior),
or `sample_prior` / `sample_data` is not the model that `resample` assumes. Re-run with
`blocks=` naming fewer blocks to find which one. With alpha = 0.01 a correct sampler fails
at most about one seed in a hundred; a failure that persists across seeds is a bug.
"inconclusive": run with more chains (the report says which functions). "pass": no
difference found at the test's power.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc

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

__all__ = [
    "GewekeReport",
    "GewekeRow",
    "geweke_test",
]


# ---- compiled simulators ----------------------------------------------------------------


def _mc_values(model, keys, data, fixed_key, *, functions, frozen):
    """Marginal-conditional draws: keys (batches, batch_size) -> (draws, functions), and the
    values at which the `frozen` blocks are held (returned for the SC chains)."""
    fixed = fixed_values(model, fixed_key, data, frozen)

    def one(key):
        draw_data, state = joint_draw(model, key, data, fixed)
        return evaluate(model, functions, draw_data, state)

    values = jax.lax.map(jax.vmap(one), keys)
    return values.reshape(-1, values.shape[-1]), fixed


def _sc_values(model, keys, data, fixed, *, functions, frozen, num_steps, thin, burn_in):
    """Successive-conditional chains, each from its own joint draw: keys (batches,
    batch_size) -> (chains, num_steps, functions)."""

    def chain(key):
        start_key, chain_key = jax.random.split(key)
        data0, state0 = joint_draw(model, start_key, data, fixed)

        def step(carry, step_key):
            chain_data, state = carry
            sweep_key, data_key = jax.random.split(step_key)
            blocks = model.bound_blocks
            state, _ = gibbs.sweep(blocks, sweep_key, chain_data, state, frozen)
            chain_data = gibbs.sample_data(blocks, data_key, state, chain_data)
            return (chain_data, state), None

        def record(carry, record_key):
            carry, _ = jax.lax.scan(step, carry, jax.random.split(record_key, thin))
            return carry, evaluate(model, functions, *carry)

        burn_key, run_key = jax.random.split(chain_key)
        carry = (data0, state0)
        if burn_in:
            carry, _ = jax.lax.scan(step, carry, jax.random.split(burn_key, burn_in))
        _, values = jax.lax.scan(record, carry, jax.random.split(run_key, num_steps))
        return values

    values = jax.lax.map(jax.vmap(chain), keys)
    return values.reshape(-1, *values.shape[2:])


_mc_call = compile_test(_mc_values)
_sc_call = compile_test(_sc_values)


# ---- statistics -------------------------------------------------------------------------


def welch_two_sided_p(z, dof) -> np.ndarray:
    """P(|T| >= |z|) for T Student-t with `dof` degrees of freedom: the p-value of Welch's
    two-sample t-test. Normal beyond 1e4 degrees of freedom (the two agree to 1% there)."""
    z, dof = np.broadcast_arrays(np.abs(np.asarray(z, float)), np.asarray(dof, float))
    normal = np.vectorize(lambda v: math.erfc(v / math.sqrt(2.0)), otypes=[float])(z)
    student = (dof <= 1e4) & np.isfinite(z)
    dof, z = np.where(student, dof, 1.0), np.where(student, z, 0.0)
    tail = np.asarray(betainc(dof / 2, 0.5, dof / (dof + z**2)), float)
    return np.where(student, tail, normal)


class GewekeRow(NamedTuple):
    """One test function's comparison; `outcome` is "pass", "fail" or "inconclusive"."""

    name: str
    mean_mc: float
    mean_sc: float
    ess_sc: float
    z: float
    p: float
    outcome: str

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


@dataclasses.dataclass(frozen=True, repr=False)
class GewekeReport(Verdict):
    """The outcome of `geweke_test`: one row per test function and an overall verdict
    (`outcome`: "pass", "fail" or "inconclusive", `reason`; `passed`).

    Attributes: `names`, `mean_mc`, `mean_sc`, `se_mc`, `se_sc` (standard errors, the SC one
    from the spread of the chains' means), `ess_sc` (effective SC draws: the SC values'
    variance over the squared standard error that the chains' spread gives), `z`, `dof`
    (Welch's degrees of freedom), `p` (two-sided), `rejected` (after the multiple-comparison
    correction), `inconclusive` (fewer than `min_ess` effective draws), `nonfinite` (count
    of NaN or infinite values: such a function fails outright, its means shown as nan),
    `alpha`, `correction`, `burn_in`, `thin`, and the values `mc_values` (draws, functions)
    and `sc_values` (chains, steps, functions) for plots, with non-finite values replaced
    by 0.
    """

    mean_mc: np.ndarray
    mean_sc: np.ndarray
    se_mc: np.ndarray
    se_sc: np.ndarray
    ess_sc: np.ndarray
    z: np.ndarray
    dof: np.ndarray
    p: np.ndarray
    nonfinite: np.ndarray
    min_ess: float
    burn_in: int
    thin: int
    mc_values: np.ndarray
    sc_values: np.ndarray

    @property
    def table(self) -> tuple[GewekeRow, ...]:
        return tuple(
            GewekeRow(name, float(a), float(b), float(e), float(z), float(p), outcome)
            for name, a, b, e, z, p, outcome in zip(
                self.names, self.mean_mc, self.mean_sc, self.ess_sc, self.z, self.p,
                self.outcomes, strict=True)
        )

    def __repr__(self) -> str:
        width = self._name_width()
        chains, steps = self.sc_values.shape[:2]
        sweeps = f", a step every {self.thin} sweeps" if self.thin > 1 else ""
        burn_in = f" after {self.burn_in} sweeps" if self.burn_in else ""
        lines = [
            self._heading("Geweke test", f"{self.mc_values.shape[0]} MC draws, {chains} SC "
                          f"chains x {steps} steps{burn_in}{sweeps}"),
            f"{'test function':<{width}}  {'mean_mc':>11}  {'mean_sc':>11}  {'ess_sc':>7}  "
            f"{'z':>7}  {'p':>9}  outcome",
        ]
        for row, bad in zip(self.table, self.nonfinite, strict=True):
            note = f"  ({bad} non-finite values)" if bad else ""
            lines.append(f"{row.name:<{width}}  {row.mean_mc:11.4g}  {row.mean_sc:11.4g}  "
                         f"{row.ess_sc:7.0f}  {row.z:7.2f}  {row.p:9.2e}  "
                         f"{row.outcome}{note}")
        return "\n".join(lines)

    def plot(self, path) -> None:
        """Save PP and QQ plots (SC against MC quantiles), one pair per test function."""
        plt = pyplot()
        count = len(self.names)
        figure, axes = plt.subplots(count, 2, figsize=(7, 3.2 * count), squeeze=False)
        levels = np.linspace(0.005, 0.995, 199)
        sc = self.sc_values.reshape(-1, count)
        for i, name in enumerate(self.names):
            mc_sorted = np.sort(self.mc_values[:, i])
            sc_sorted = np.sort(sc[:, i])
            pooled = np.quantile(np.concatenate([mc_sorted, sc_sorted]), levels)
            pp, qq = axes[i]
            pp.plot(np.searchsorted(mc_sorted, pooled, "right") / mc_sorted.size,
                    np.searchsorted(sc_sorted, pooled, "right") / sc_sorted.size, ".")
            pp.plot([0, 1], [0, 1], "k--", lw=0.8)
            pp.set(title=f"PP {name}", xlabel="MC CDF", ylabel="SC CDF")
            qmc, qsc = np.quantile(mc_sorted, levels), np.quantile(sc_sorted, levels)
            qq.plot(qmc, qsc, ".")
            low, high = min(qmc[0], qsc[0]), max(qmc[-1], qsc[-1])
            qq.plot([low, high], [low, high], "k--", lw=0.8)
            qq.set(title=f"QQ {name} (z={self.z[i]:.2f})", xlabel="MC", ylabel="SC")
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)


def _compare(names, mc, sc, *, eps, alpha, correction, min_ess, burn_in, thin) -> GewekeReport:
    """z-scores of mean(MC) - mean(SC) (Welch), the SC standard error from the spread of the
    means of the independent chains; a function with a non-finite value fails outright, one
    with fewer than `min_ess` effective draws on either side is inconclusive."""
    count = mc.shape[1]
    nonfinite = (~np.isfinite(mc)).sum(0) + (~np.isfinite(sc)).sum((0, 1))
    mc = np.where(np.isfinite(mc), mc, 0.0)
    sc = np.where(np.isfinite(sc), sc, 0.0)
    num_draws, (num_chains, num_steps) = mc.shape[0], sc.shape[:2]
    # Function-major copies, so that numpy sums along contiguous memory (pairwise, to a few
    # rounding errors: a constant function's means then agree to the model's precision).
    by_function_mc = np.ascontiguousarray(mc.T)
    by_function_sc = np.ascontiguousarray(np.moveaxis(sc, -1, 0))
    mean_mc, variance_mc = by_function_mc.mean(-1), by_function_mc.var(-1, ddof=1)
    se_mc = np.sqrt(variance_mc / num_draws)
    chain_means = by_function_sc.mean(-1)
    mean_sc = chain_means.mean(-1)
    variance_sc = by_function_sc.reshape(count, -1).var(-1, ddof=1)
    # The chains start from independent joint draws, so their means are independent: their
    # spread gives the SC standard error whatever the autocorrelation within a chain, and the
    # number of effective SC draws (none when every recorded value is the same, as when no
    # chain reached a rare value). In the z-score the chains are taken to be worth no more
    # than as many independent draws, with the larger of the two simulators' variances (a
    # floor for chains that happen to agree, e.g. none reached a heavy tail the MC draws did).
    recorded = num_chains * num_steps
    between = chain_means.var(-1, ddof=1) / num_chains
    with np.errstate(divide="ignore", invalid="ignore"):
        ess_sc = np.where(between > 0, variance_sc / between,
                          np.where(variance_sc > 0, recorded, 0.0))
        se_sc = np.sqrt(np.maximum(between, np.maximum(variance_mc, variance_sc) / recorded))
        scale = np.sqrt(se_mc**2 + se_sc**2)
        dof = scale**4 / (se_mc**4 / (num_draws - 1) + se_sc**4 / (num_chains - 1))
    difference = mean_mc - mean_sc
    # Functions that are constant under both simulators (the mean of a stochastic matrix)
    # carry no information: z = 0 when they agree to rounding.
    tolerance = 64 * eps * np.maximum(np.abs(mean_mc), np.abs(mean_sc))
    z = np.zeros(count)
    informative = scale > tolerance
    z[informative] = difference[informative] / scale[informative]
    z[~informative & (np.abs(difference) > tolerance)] = np.inf
    z[nonfinite > 0] = np.inf
    mean_mc[nonfinite > 0] = mean_sc[nonfinite > 0] = np.nan
    p = welch_two_sided_p(z, np.where(informative, dof, np.inf))
    inconclusive = (np.minimum(ess_sc, num_draws) < min_ess) & informative & (nonfinite == 0)
    rejected = np.zeros(count, bool)
    rejected[~inconclusive] = multiple_comparison(p[~inconclusive], alpha, correction)
    return GewekeReport(
        names=tuple(names), mean_mc=mean_mc, mean_sc=mean_sc, se_mc=se_mc, se_sc=se_sc,
        ess_sc=ess_sc, z=z, dof=dof, p=p, rejected=rejected, inconclusive=inconclusive,
        advice=f"fewer than min_ess={min_ess:g} effective draws; run more SC chains "
               "(num_chains) or more MC draws (num_samples)",
        nonfinite=nonfinite, min_ess=min_ess, burn_in=burn_in, thin=thin, alpha=alpha,
        correction=correction, mc_values=mc, sc_values=sc,
    )


# ---- the test ---------------------------------------------------------------------------


def geweke_test(
    model: GibbsScheduler | GibbsBlock,
    data_shapes: Mapping[str, Any],
    num_samples: int = 2000,
    *,
    num_sc_samples: int | None = None,
    num_chains: int = 200,
    test_functions: Mapping[str, TestFunction] | Sequence[TestFunction] | None = None,
    blocks: Sequence[str] | None = None,
    thin: int = 1,
    burn_in: int = 10,
    min_ess: float = 50.0,
    alpha: float = 0.01,
    correction: str = "holm",
    batch_size: int = 256,
    seed: int = 0,
) -> GewekeReport:
    """Geweke's joint-distribution test of `model`'s Gibbs sweep (see the module docstring).

    Args:
        model: a `GibbsScheduler`, or one `GibbsBlock` (wrapped with its providers).
        data_shapes: the data that is not simulated: at least `"mask"` (N, T), which sets the
            number and lengths of the recordings (trailing zeros make them ragged), and any
            data a block reads but does not simulate. Keep it small (e.g. N = 2, T = 30).
        num_samples: independent marginal-conditional draws.
        num_sc_samples: recorded successive-conditional steps in all (default `num_samples`),
            split over `num_chains` independent chains (at least 2), each started from its
            own joint draw: many short chains (by default 200, of 10 recorded steps after
            10 sweeps) rather than a few long ones.
        test_functions: name -> fn(variables) -> scalar, where `variables` is the state
            merged with the data (or a sequence of named functions); `moseq.testing.LOG_JOINT`
            stands for the model's log joint. Default: `default_test_functions`.
        blocks: names of the blocks to test; the others are held at one prior draw (the test
            is then conditional on their values). A held block must not descend in the prior
            from a tested one (e.g. test transitions together with the states block).
        thin: sweeps between recorded SC steps. burn_in: sweeps of each chain before its
            first recorded step (a correct sampler's chains start in the joint and need
            none; they give a bug time to move the chains).
        min_ess: a test function with fewer effective draws (SC, or MC) is inconclusive.
        alpha, correction: family-wise level and "holm" or "bonferroni", over the
            conclusive test functions.
        batch_size: MC draws, and SC chains, simulated at once (memory).
        seed: int seed or key; the whole test is a deterministic function of it.

    Returns:
        A `GewekeReport`: `.outcome`, `.passed`, `.reason`, `.table`, `print(report)`,
        `.plot(path)`.
    """
    model, data, tested, frozen = setup_test(model, data_shapes, blocks)
    if test_functions is None:
        test_functions = default_test_functions(model, data, tested)
    functions = named_functions(test_functions)
    if not functions:
        raise ValueError("no test functions: pass `test_functions` or test blocks that write "
                         "variables.")
    if num_samples < 2 or num_chains < 2 or thin < 1 or burn_in < 0 or not min_ess >= 0:
        raise ValueError(f"need num_samples >= 2, num_chains >= 2 (the SC standard error "
                         f"comes from their spread), thin >= 1, burn_in >= 0 and min_ess >= 0; "
                         f"got {num_samples}, {num_chains}, {thin}, {burn_in} and {min_ess}.")
    num_sc = num_samples if num_sc_samples is None else num_sc_samples
    steps = max(-(-num_sc // num_chains), 1)
    key = as_key(seed)
    fixed_key, mc_key, sc_key = jax.random.split(key, 3)
    mc, fixed = _mc_call(model, batched_keys(mc_key, num_samples, batch_size), data, fixed_key,
                         functions=functions, frozen=frozen)
    sc = _sc_call(model, batched_keys(sc_key, num_chains, batch_size), data, fixed,
                  functions=functions, frozen=frozen, num_steps=steps, thin=thin,
                  burn_in=burn_in)
    return _compare([name for name, _ in functions], np.asarray(mc[:num_samples], float),
                    np.asarray(sc[:num_chains], float), eps=float(jnp.finfo(mc.dtype).eps),
                    alpha=alpha, correction=correction, min_ess=min_ess, burn_in=burn_in,
                    thin=thin)
