"""Geweke's joint-distribution test of a Gibbs sampler (Geweke, 2004, JASA 99:799-804).

A correct Gibbs sampler leaves the joint distribution p(state, data) invariant. Two
simulators of that joint are compared:

* marginal-conditional (MC): independent draws, state from the prior (`sample_prior` of
  every block, parents first), then data given the state (`sample_data`);
* successive-conditional (SC): a chain that alternates one Gibbs sweep of the state given
  the data and a fresh simulation of the data given the state. It starts from an MC draw, so
  if every block samples its full conditional the chain never leaves the joint; a block that
  samples the wrong conditional makes it drift to another distribution.

The means of a few test functions g(state, data) under both simulators are compared with
z-scores whose standard errors account for the autocorrelation of the SC chain (an effective
sample size by Geyer's initial monotone sequence), and the verdict is corrected for the
number of test functions (Holm, or Bonferroni) at level `alpha`.

Choosing test functions. Defaults: the mean and the mean of squares of every float variable
written by the tested blocks, the mean and the switch rate (fraction of consecutive entries
along the last axis that differ) of every integer variable, and the log joint. Good extra
functions are the ones a bug would move: a self-transition probability (`pi` diagonal), a
state's dwell time, a regression coefficient that a prior term pulls on. Every test
function needs a finite variance under the joint, or the z-scores mean nothing: heavy-tailed
priors (an inverse Wishart with nu_0 <= D + 3 has no finite variance) need either a
lighter-tailed prior in the test or bounded functions (e.g. `jnp.tanh`, `jnp.log` of a
determinant). Functions that are label-symmetric under the prior (the mean of `pi`, whose
rows sum to one) carry no information; they are reported with z = 0.

Choosing sample sizes. The test detects a shift of a test function's mean of about
3 * sqrt(var / n_mc + var / ess_sc). A few thousand MC draws and a few thousand SC steps
suffice for the usual bugs (a missing prior term, a wrong count) on small models; keep the
data small (few recordings, tens of frames) so the chain mixes: with a lot of data the
posterior is narrow, each sweep moves the state little, and the SC effective sample size
collapses. The report's `ess_sc` column tells you when to run longer or shrink the data.

What a failure means. At least one test function has a different mean under the two
simulators: some block's `resample` does not sample the full conditional implied by the
blocks' `sample_prior` and `sample_data` (a missing term, a wrong count, a dropped prior),
or `sample_prior` / `sample_data` is not the model that `resample` assumes. Re-run with
`blocks=` naming fewer blocks to find which one. With alpha = 0.01 a correct sampler
fails about once in a hundred seeds; a failure that persists across seeds is a bug.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

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
    "effective_sample_size",
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
    """Successive-conditional chains, one per key: (chains, num_steps, functions)."""

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

    return jax.vmap(chain)(keys)


_mc_call = compile_test(_mc_values)
_sc_call = compile_test(_sc_values)


# ---- statistics -------------------------------------------------------------------------


def effective_sample_size(chain) -> float:
    """Effective sample size of a 1-d chain: n / (1 + 2 sum of autocorrelations), the sum
    truncated by Geyer's initial monotone positive sequence. A constant chain gives n."""
    x = np.asarray(chain, dtype=float)
    n = x.size
    if n < 4:
        return float(n)
    x = x - x.mean()
    variance = np.dot(x, x) / n
    if not variance > 0:
        return float(n)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    autocovariance = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n] / n
    rho = autocovariance / variance
    num_pairs = n // 2
    pairs = rho[: 2 * num_pairs : 2] + rho[1 : 2 * num_pairs : 2]
    positive = np.nonzero(pairs <= 0)[0]
    pairs = pairs[: positive[0] if positive.size else num_pairs]
    pairs = np.minimum.accumulate(pairs)
    tau = max(-1.0 + 2.0 * pairs.sum(), 1.0 / math.log10(max(n, 10)))
    return float(min(n / tau, n * math.log10(max(n, 10))))


def normal_two_sided_p(z) -> np.ndarray:
    """P(|N(0,1)| >= |z|)."""
    return np.vectorize(lambda v: math.erfc(abs(v) / math.sqrt(2.0)), otypes=[float])(z)


class GewekeRow(NamedTuple):
    """One test function's comparison."""

    name: str
    mean_mc: float
    mean_sc: float
    z: float
    p: float
    passed: bool


@dataclasses.dataclass(frozen=True, repr=False)
class GewekeReport(Verdict):
    """The outcome of `geweke_test`: one row per test function and an overall verdict.

    Attributes: `names`, `mean_mc`, `mean_sc`, `se_mc`, `se_sc` (standard errors, the SC one
    from the effective sample size `ess_sc`), `z`, `p` (two-sided), `rejected` (after the
    multiple-comparison correction), `nonfinite` (count of NaN or infinite values: such a
    function fails outright, its means shown as nan), `alpha`, `correction`, and the values
    `mc_values` (draws, functions) and `sc_values` (chains, steps, functions) for plots, with
    non-finite values replaced by 0.
    """

    mean_mc: np.ndarray
    mean_sc: np.ndarray
    se_mc: np.ndarray
    se_sc: np.ndarray
    ess_sc: np.ndarray
    z: np.ndarray
    p: np.ndarray
    nonfinite: np.ndarray
    mc_values: np.ndarray
    sc_values: np.ndarray

    @property
    def table(self) -> tuple[GewekeRow, ...]:
        return tuple(
            GewekeRow(name, float(a), float(b), float(z), float(p), not bool(r))
            for name, a, b, z, p, r in zip(self.names, self.mean_mc, self.mean_sc, self.z,
                                           self.p, self.rejected, strict=True)
        )

    def __repr__(self) -> str:
        width = self._name_width()
        lines = [
            self._heading("Geweke test", f"{self.mc_values.shape[0]} MC draws, "
                          f"{self.sc_values.shape[0]} SC chain(s) x {self.sc_values.shape[1]} "
                          "steps"),
            f"{'test function':<{width}}  {'mean_mc':>11}  {'mean_sc':>11}  {'ess_sc':>7}  "
            f"{'z':>7}  {'p':>9}  pass",
        ]
        for row, ess, bad in zip(self.table, self.ess_sc, self.nonfinite, strict=True):
            note = f"  ({bad} non-finite values)" if bad else ""
            lines.append(f"{row.name:<{width}}  {row.mean_mc:11.4g}  {row.mean_sc:11.4g}  "
                         f"{ess:7.0f}  {row.z:7.2f}  {row.p:9.2e}  "
                         f"{'yes' if row.passed else 'NO'}{note}")
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


def _compare(names, mc, sc, alpha, correction) -> GewekeReport:
    """z-scores of mean(MC) - mean(SC); a function with a non-finite value fails outright."""
    count = mc.shape[1]
    nonfinite = (~np.isfinite(mc)).sum(0) + (~np.isfinite(sc)).sum((0, 1))
    mc = np.where(np.isfinite(mc), mc, 0.0)
    sc = np.where(np.isfinite(sc), sc, 0.0)
    mean_mc = mc.mean(0)
    se_mc = mc.std(0, ddof=1) / math.sqrt(mc.shape[0])
    num_chains = sc.shape[0]
    ess = np.array([[effective_sample_size(sc[c, :, f]) for f in range(count)]
                    for c in range(num_chains)])
    mean_sc = sc.mean((0, 1))
    se_sc = np.sqrt(np.sum(sc.var(1, ddof=1) / ess, 0)) / num_chains
    scale = np.sqrt(se_mc**2 + se_sc**2)
    difference = mean_mc - mean_sc
    # Functions that are constant under both simulators (the mean of a stochastic matrix)
    # carry no information: z = 0 when they agree to rounding.
    tolerance = 1e-9 * np.maximum(np.maximum(np.abs(mean_mc), np.abs(mean_sc)), 1.0)
    z = np.zeros(count)
    informative = scale > tolerance
    z[informative] = difference[informative] / scale[informative]
    z[~informative & (np.abs(difference) > tolerance)] = np.inf
    z[nonfinite > 0] = np.inf
    mean_mc[nonfinite > 0] = mean_sc[nonfinite > 0] = np.nan
    p = normal_two_sided_p(z)
    return GewekeReport(
        names=tuple(names), mean_mc=mean_mc, mean_sc=mean_sc, se_mc=se_mc, se_sc=se_sc,
        ess_sc=ess.sum(0), z=z, p=p, rejected=multiple_comparison(p, alpha, correction),
        nonfinite=nonfinite, alpha=alpha, correction=correction, mc_values=mc, sc_values=sc,
    )


# ---- the test ---------------------------------------------------------------------------


def geweke_test(
    model: GibbsScheduler | GibbsBlock,
    data_shapes: Mapping[str, Any],
    num_samples: int = 2000,
    *,
    num_sc_samples: int | None = None,
    num_chains: int = 4,
    test_functions: Mapping[str, TestFunction] | Sequence[TestFunction] | None = None,
    blocks: Sequence[str] | None = None,
    thin: int = 1,
    burn_in: int = 0,
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
            split over `num_chains` independent chains, each started from a joint draw.
        test_functions: name -> fn(variables) -> scalar, where `variables` is the state
            merged with the data (or a sequence of named functions); `moseq.testing.LOG_JOINT`
            stands for the model's log joint. Default: `default_test_functions`.
        blocks: names of the blocks to test; the others are held at one prior draw (the test
            is then conditional on their values). A held block must not descend in the prior
            from a tested one (e.g. test transitions together with the states block).
        thin: sweeps between recorded SC steps. burn_in: SC sweeps discarded first (none is
            needed for a correct sampler: the chains start in the joint).
        alpha, correction: family-wise level and "holm" or "bonferroni".
        batch_size: MC draws simulated at once (memory).
        seed: int seed or key; the whole test is a deterministic function of it.

    Returns:
        A `GewekeReport`: `.passed`, `.table`, `print(report)`, `.plot(path)`.
    """
    model, data, tested, frozen = setup_test(model, data_shapes, blocks)
    if test_functions is None:
        test_functions = default_test_functions(model, data, tested)
    functions = named_functions(test_functions)
    if not functions:
        raise ValueError("no test functions: pass `test_functions` or test blocks that write "
                         "variables.")
    if num_samples < 2 or thin < 1 or num_chains < 1 or burn_in < 0:
        raise ValueError("need num_samples >= 2, thin >= 1, num_chains >= 1, burn_in >= 0.")
    num_sc = num_samples if num_sc_samples is None else num_sc_samples
    steps = max(-(-num_sc // num_chains), 4)
    key = as_key(seed)
    fixed_key, mc_key, sc_key = jax.random.split(key, 3)
    mc, fixed = _mc_call(model, batched_keys(mc_key, num_samples, batch_size), data, fixed_key,
                         functions=functions, frozen=frozen)
    mc = mc[:num_samples]
    sc = _sc_call(model, jax.random.split(sc_key, num_chains), data, fixed, functions=functions,
                  frozen=frozen, num_steps=steps, thin=thin, burn_in=burn_in)
    return _compare([name for name, _ in functions], np.asarray(mc, float),
                    np.asarray(sc, float), alpha, correction)

