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
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from moseq.core.block import Data, GibbsBlock, State
from moseq.core.plan import validate_plan
from moseq.core.scheduler import (
    GibbsScheduler,
    _data_draws,
    _log_joint_terms,
    _prior_draws,
    _resample_all,
    as_key,
)

TestFunction = Callable[[dict], Any]
"""A test function maps `variables` (the state merged with the data) to a scalar."""

__all__ = [
    "LOG_JOINT",
    "GewekeReport",
    "GewekeRow",
    "as_scheduler",
    "default_test_functions",
    "effective_sample_size",
    "geweke_test",
    "joint_draw",
    "multiple_comparison",
]


# ---- test functions ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Moment:
    """mean(variables[name] ** power) (hashable, so compiled chains are reused)."""

    name: str
    power: int

    def __call__(self, variables):
        value = jnp.asarray(variables[self.name])
        value = value.astype(jnp.result_type(value, float))
        return jnp.mean(value**self.power)


@dataclasses.dataclass(frozen=True)
class _SwitchRate:
    """Fraction of consecutive entries along the last axis that differ."""

    name: str

    def __call__(self, variables):
        value = jnp.asarray(variables[self.name])
        return jnp.mean((value[..., 1:] != value[..., :-1]).astype(jnp.result_type(float)))


@dataclasses.dataclass(frozen=True)
class _LogJoint:
    """Marker for the model's log joint, computed with the scheduler's blocks."""

    def __call__(self, variables):
        raise TypeError("LOG_JOINT is evaluated by the test itself, with the model's blocks.")


LOG_JOINT = _LogJoint()
"""Use as a test function to compare the log joint `sum(block.log_prob)`."""


def default_test_functions(
    model: GibbsScheduler, data_shapes: Mapping[str, Any], blocks: Sequence[str] | None = None,
    log_joint: bool = True, label_invariant: bool = False,
) -> dict[str, TestFunction]:
    """The default test functions: for every variable the tested blocks write, the mean and
    mean of squares (float variables) or the mean and switch rate (integer variables with a
    last axis longer than one); plus the log joint.

    `label_invariant=True` drops the means of integer variables (state labels), which
    change when the sampler permutes the labels: what `sbc` needs, since its chains start
    away from the truth and a posterior has one mode per labelling."""
    model = as_scheduler(model, data_shapes)
    tested = _tested_blocks(model, blocks)
    data = _as_data(data_shapes)
    shapes = jax.eval_shape(lambda key: joint_draw(model, key, data)[1], jax.random.key(0))
    functions: dict[str, TestFunction] = {}
    for block in model.blocks:
        if block.name not in tested:
            continue
        for name in block.writes:
            spec = shapes[name]
            if jnp.issubdtype(spec.dtype, jnp.floating):
                functions[f"mean({name})"] = _Moment(name, 1)
                functions[f"mean({name}^2)"] = _Moment(name, 2)
            else:
                if not label_invariant:
                    functions[f"mean({name})"] = _Moment(name, 1)
                if spec.ndim >= 1 and spec.shape[-1] > 1:
                    functions[f"switch_rate({name})"] = _SwitchRate(name)
    if log_joint:
        functions["log_joint"] = LOG_JOINT
    return functions


def _named_functions(test_functions) -> tuple[tuple[str, TestFunction], ...]:
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


def _evaluate(model, functions, data, state) -> jax.Array:
    variables = {**data, **state}
    values = []
    for name, fn in functions:
        value = (_log_joint_terms(model, data, state) if isinstance(fn, _LogJoint)
                 else fn(variables))
        value = jnp.asarray(value)
        if value.shape != ():
            raise ValueError(f"test function {name!r} must return a scalar; got shape "
                             f"{value.shape}. Reduce it (e.g. jnp.mean) or split it.")
        values.append(value.astype(jnp.result_type(float)))
    return jnp.stack(values)


# ---- the model and its joint draws ------------------------------------------------------


def _as_data(data_shapes: Mapping[str, Any]) -> Data:
    if "mask" not in data_shapes:
        raise ValueError("`data_shapes` must hold at least 'mask', an (N, T) array of 0/1 frame "
                         "weights that sets the number and length of the simulated recordings.")
    data = {k: jnp.asarray(v) for k, v in data_shapes.items()}
    if data["mask"].ndim != 2:
        raise ValueError(f"`data_shapes['mask']` must be (N, T); got {data['mask'].shape}.")
    return data


def as_scheduler(model: GibbsScheduler | GibbsBlock, data_shapes: Mapping[str, Any] = ()):
    """`model` as a mesh-free `GibbsScheduler`: a scheduler is rebuilt from its blocks (the
    tests run on one device); a single block is wrapped with its likelihood providers, its
    reads that no block writes counting as data."""
    if isinstance(model, GibbsScheduler):
        if model.mesh is None:
            return model
        return GibbsScheduler(model.blocks, model.data_keys)
    if isinstance(model, GibbsBlock):
        blocks = [model, *(d for d in model.dependencies() if d is not model)]
        written = {v for block in blocks for v in block.writes}
        reads = {v for block in blocks for v in (*block.reads, *block.init_reads)}
        data_keys = ("mask", *sorted((set(data_shapes) | reads) - written - {"mask"}))
        return GibbsScheduler(blocks, data_keys)
    raise TypeError(f"`model` must be a GibbsScheduler or a GibbsBlock; got {type(model)}.")


def _tested_blocks(model: GibbsScheduler, blocks: Sequence[str] | None) -> tuple[str, ...]:
    """Names of the blocks to test; check that the others can be held fixed."""
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
    writers = validate_plan(model.blocks, model.data_keys)
    descendants = {v for name in tested for v in model.block(name).writes}
    changed = True
    while changed:
        changed = False
        for block in model.blocks:
            if set(block.prior_reads) & descendants and not set(block.writes) <= descendants:
                descendants |= set(block.writes)
                changed = True
    for variable in descendants:
        writer = writers[variable].name
        if writer not in tested:
            raise ValueError(
                f"cannot hold {writer} fixed while testing {sorted(tested)}: its variable "
                f"{variable!r} depends on theirs in the prior, so fixing it is not a forward "
                f"simulation. Add {writer!r} to `blocks`."
            )
    return tested


def joint_draw(model: GibbsScheduler, key, data: Data, fixed: State | None = None):
    """One draw of (data, state) from the joint: `sample_prior` of every block, parents first,
    then every block's `sample_data`. Variables in `fixed` are kept (their blocks are not
    drawn). With `fixed` empty this is `model.simulate(key, data)`, draw for draw."""
    prior_key, data_key = jax.random.split(as_key(key))
    state = _prior_draws(model, prior_key, data, fixed)
    return _data_draws(model, data_key, state, dict(data)), state


def _fixed_values(model, key, data, frozen: tuple[str, ...]) -> State:
    """One prior draw of the variables of the `frozen` blocks (traced, inside a program)."""
    if not frozen:
        return {}
    _, state = joint_draw(model, key, data)
    return {v: state[v] for block in model.blocks if block.name in frozen for v in block.writes}


# ---- compiled simulators ----------------------------------------------------------------


COMPILER_OPTIONS = {"xla_backend_optimization_level": 0,
                    "xla_llvm_disable_expensive_passes": True}
"""XLA options of the test programs. They run once per test, so compilation dominates:
without optimisation a small AR-HMM compiles about twice as fast and still runs its few
thousand sweeps in about a second."""


def _compile(fn, static_argnames):
    """`jax.jit` of `fn(model, ...)` with the model's arrays traced and the rest static."""

    @functools.partial(jax.jit, static_argnames=("static", *static_argnames),
                       compiler_options=COMPILER_OPTIONS)
    def compiled(params, *args, static, **kwargs):
        return fn(eqx.combine(params, static), *args, **kwargs)

    def call(model, *args, **kwargs):
        params, static = eqx.partition(model, eqx.is_array)
        return compiled(params, *args, static=static, **kwargs)

    return call


def _mc_values(model, keys, data, fixed_key, *, functions, frozen):
    """Marginal-conditional draws: keys (batches, batch_size) -> (draws, functions), and the
    values at which the `frozen` blocks are held (returned for the SC chains)."""
    fixed = _fixed_values(model, fixed_key, data, frozen)

    def one(key):
        draw_data, state = joint_draw(model, key, data, fixed)
        return _evaluate(model, functions, draw_data, state)

    values = jax.lax.map(jax.vmap(one), keys)
    return values.reshape(-1, values.shape[-1]), fixed


def batched_keys(key, num: int, batch_size: int):
    """`num` keys laid out as (batches, size) with the fewest padding keys."""
    num_batches = -(-num // max(1, min(batch_size, num)))
    size = -(-num // num_batches)
    return jax.random.split(key, num_batches * size).reshape(num_batches, size)


def _sc_values(model, keys, data, fixed, *, functions, frozen, num_steps, thin, burn_in):
    """Successive-conditional chains, one per key: (chains, num_steps, functions)."""

    def chain(key):
        start_key, chain_key = jax.random.split(key)
        data0, state0 = joint_draw(model, start_key, data, fixed)

        def step(carry, step_key):
            chain_data, state = carry
            sweep_key, data_key = jax.random.split(step_key)
            state, _ = _resample_all(model, sweep_key, chain_data, state, frozen)
            chain_data = _data_draws(model, data_key, state, chain_data)
            return (chain_data, state), None

        def record(carry, record_key):
            carry, _ = jax.lax.scan(step, carry, jax.random.split(record_key, thin))
            return carry, _evaluate(model, functions, *carry)

        burn_key, run_key = jax.random.split(chain_key)
        carry = (data0, state0)
        if burn_in:
            carry, _ = jax.lax.scan(step, carry, jax.random.split(burn_key, burn_in))
        _, values = jax.lax.scan(record, carry, jax.random.split(run_key, num_steps))
        return values

    return jax.vmap(chain)(keys)


_mc_call = _compile(_mc_values, ("functions", "frozen"))
_sc_call = _compile(_sc_values, ("functions", "frozen", "num_steps", "thin", "burn_in"))


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


def multiple_comparison(p_values, alpha: float, correction: str = "holm") -> np.ndarray:
    """Which hypotheses are rejected at family-wise level `alpha` (Holm or Bonferroni)."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if correction == "bonferroni":
        return p <= alpha / max(m, 1)
    if correction != "holm":
        raise ValueError(f"`correction` must be 'holm' or 'bonferroni'; got {correction!r}.")
    rejected = np.zeros(m, bool)
    for rank, index in enumerate(np.argsort(p, kind="stable")):
        if p[index] > alpha / (m - rank):
            break
        rejected[index] = True
    return rejected


class GewekeRow(NamedTuple):
    """One test function's comparison."""

    name: str
    mean_mc: float
    mean_sc: float
    z: float
    p: float
    passed: bool


def _need_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib, which moseq does not depend on; "
                          "`pip install matplotlib` to draw them.") from error
    return plt


@dataclasses.dataclass(frozen=True, repr=False)
class GewekeReport:
    """The outcome of `geweke_test`: one row per test function and an overall verdict.

    Attributes: `names`, `mean_mc`, `mean_sc`, `se_mc`, `se_sc` (standard errors, the SC one
    from the effective sample size `ess_sc`), `z`, `p` (two-sided), `rejected` (after the
    multiple-comparison correction), `nonfinite` (count of NaN or infinite values: such a
    function fails outright, its means shown as nan), `alpha`, `correction`, and the values
    `mc_values` (draws, functions) and `sc_values` (chains, steps, functions) for plots, with
    non-finite values replaced by 0.
    """

    names: tuple[str, ...]
    mean_mc: np.ndarray
    mean_sc: np.ndarray
    se_mc: np.ndarray
    se_sc: np.ndarray
    ess_sc: np.ndarray
    z: np.ndarray
    p: np.ndarray
    rejected: np.ndarray
    nonfinite: np.ndarray
    alpha: float
    correction: str
    mc_values: np.ndarray
    sc_values: np.ndarray

    @property
    def passed(self) -> bool:
        """True when no test function's difference survives the correction."""
        return not bool(np.any(self.rejected))

    @property
    def failures(self) -> tuple[str, ...]:
        return tuple(n for n, r in zip(self.names, self.rejected, strict=True) if r)

    @property
    def table(self) -> tuple[GewekeRow, ...]:
        return tuple(
            GewekeRow(name, float(a), float(b), float(z), float(p), not bool(r))
            for name, a, b, z, p, r in zip(self.names, self.mean_mc, self.mean_sc, self.z,
                                           self.p, self.rejected, strict=True)
        )

    def __repr__(self) -> str:
        width = max([len(n) for n in self.names] + [13])
        verdict = "PASSED" if self.passed else f"FAILED ({', '.join(self.failures)})"
        lines = [
            f"Geweke test {verdict}: {self.mc_values.shape[0]} MC draws, "
            f"{self.sc_values.shape[0]} SC chain(s) x {self.sc_values.shape[1]} steps, "
            f"{self.correction} at alpha={self.alpha:g}",
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
        """Save PP and QQ plots (SC against MC quantiles), one pair per test function.

        Needs matplotlib (not a moseq dependency): raises ImportError otherwise.
        """
        plt = _need_matplotlib()
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
    model = as_scheduler(model, data_shapes)
    data = _as_data(data_shapes)
    model.check_data({**data, **_simulated_shapes(model, data)})
    tested = _tested_blocks(model, blocks)
    frozen = tuple(sorted(set(model.block_names) - set(tested)))
    if test_functions is None:
        test_functions = default_test_functions(model, data, tested)
    functions = _named_functions(test_functions)
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


def _simulated_shapes(model, data) -> Data:
    """Zeros shaped like the data the model simulates (for `check_data` before compiling)."""
    shapes = jax.eval_shape(lambda key: joint_draw(model, key, data)[0], jax.random.key(0))
    return {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items() if k not in data}
