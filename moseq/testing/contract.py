"""`check_block`: does a Gibbs block keep the `GibbsBlock` contract?

The checks are mechanical (they do not test the maths; `geweke_test` and `sbc` do), one
helper per property:

* `init`, `resample` and `sample_prior` return a dict of exactly the declared `writes`, with
  the shapes and dtypes of the current state (so a sweep can run in `lax.scan`), and read
  only what they declare (each method is given its declared inputs, as the scheduler gives
  them: `moseq.core.declared_inputs`);
* no input dict is changed;
* no key is used twice (`jax.debug_key_reuse`), and no key is shared by the recordings or by
  the entries along the leading axis of a draw (identical slices in every draw);
* every method traces under `jax.jit` and `jax.vmap` over keys, a vmapped draw equals the
  jitted one with the same key, the same key gives the same draw and different keys give
  different draws;
* draws are finite and `log_prob` is a finite scalar on them and on prior draws;
* optionally, the block's scheduler passes a short Geweke test.

A broken property raises `ContractError` (an `AssertionError`) naming the block, the method
and the property.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from moseq.core import gibbs
from moseq.core.block import RECORDING_INDEX, GibbsBlock, Provider
from moseq.core.gibbs import UndeclaredRead
from moseq.core.scheduler import GibbsScheduler, as_key
from moseq.testing.geweke import GewekeReport, geweke_test
from moseq.testing.joint import COMPILER_OPTIONS

__all__ = ["ContractError", "check_block"]

DRAWS = ("resample", "sample_prior", "init")
"""The methods that draw the block's variables."""


class ContractError(AssertionError):
    """A block breaks the `GibbsBlock` contract; the message names the block and property."""


def _fail(block: GibbsBlock, prop: str, detail: str):
    raise ContractError(f"{block.name}: {prop}: {detail}")


def _spec(value) -> tuple[tuple[int, ...], Any]:
    return tuple(np.shape(value)), jnp.result_type(value)


class _Snapshot:
    """The identity and value of every entry of an input dict, to detect changes."""

    def __init__(self, tree: Mapping):
        self.keys = set(tree)
        self.items = {k: (v, np.array(v, copy=True)) for k, v in tree.items()}

    def changed(self, tree: Mapping) -> str | None:
        if set(tree) != self.keys:
            return f"keys {sorted(self.keys)} became {sorted(tree)}"
        for k, (original, copy) in self.items.items():
            if tree[k] is not original:
                return f"entry {k!r} was replaced"
            if not np.array_equal(np.asarray(tree[k]), copy, equal_nan=True):
                return f"entry {k!r} was modified in place"
        return None


# ---- 1. traced once: declarations, purity, keys -------------------------------------------


def _check_traced(block: GibbsBlock, method: str, data, state, key):
    """Trace `method` once (shapes only, with key-reuse checking) on its declared inputs:
    it must read only what it declares, reuse no key, trace under jit, leave its inputs
    unchanged and return exactly the declared writes (a scalar for `log_prob`)."""
    args = gibbs.method_inputs(block, method, key, data, state)
    snapshots = [(i, _Snapshot(a)) for i, a in enumerate(args) if isinstance(a, Mapping)]
    try:
        with jax.debug_key_reuse(True):
            out = jax.eval_shape(lambda: gibbs.invoke(block, method, args, data, state))
    except UndeclaredRead as error:
        _fail(block, f"{method} reads an undeclared variable", str(error))
    except jax.errors.KeyReuseError as error:
        _fail(block, f"{method} reuses a random key",
              f"{str(error).splitlines()[0]} Split the key (jax.random.split) and use each "
              "child once.")
    except Exception as error:  # noqa: BLE001 - any failure to trace is the finding
        if isinstance(error, ValueError) and "does not declare in `writes`" in str(error):
            _fail(block, f"{method} must return exactly the declared writes", str(error))
        _fail(block, f"{method} does not trace under jax.jit",
              f"{type(error).__name__}: {str(error).splitlines()[0]} (host-side Python or "
              "NumPy on traced values? use jnp and lax control flow).")
    for index, snapshot in snapshots:
        change = snapshot.changed(args[index])
        if change:
            _fail(block, f"{method} mutated its input", f"{change}; blocks must return new "
                  "values and never change their arguments.")
    if method == "log_prob":
        if np.shape(out) != () or not jnp.issubdtype(out.dtype, jnp.floating):
            _fail(block, "log_prob must return a float scalar",
                  f"got shape {np.shape(out)}, dtype {out.dtype}.")
        return out
    if not isinstance(out, dict):
        _fail(block, f"{method} must return a dict", f"got {type(out).__name__}.")
    if set(out) != set(block.writes):
        _fail(block, f"{method} must return exactly the declared writes",
              f"returned {sorted(out)}, declares {sorted(block.writes)}.")
    return out


def _check_stable_specs(block: GibbsBlock, state, outputs: Mapping[str, dict]) -> None:
    """Every draw keeps the shape and dtype of the state's current values."""
    for name in block.writes:
        current = _spec(state[name])
        for method, out in outputs.items():
            if _spec(out[name]) != current:
                _fail(block, f"{method} changed the shape or dtype of {name!r}",
                      f"the state has {current[0]} {current[1]}, {method} returned "
                      f"{_spec(out[name])[0]} {_spec(out[name])[1]}; a sweep in lax.scan "
                      "needs them stable.")


# ---- 2. compiled: determinism, vmap, finiteness, keys --------------------------------------


def _duplicate_recordings(tree: Mapping, names, num_recordings: int) -> dict:
    """Every recording replaced by recording 0 (for arrays named in `names`)."""
    out = {}
    for k, v in tree.items():
        v = jnp.asarray(v)
        if k in names and k != RECORDING_INDEX and v.ndim >= 1 and v.shape[0] == num_recordings:
            v = jnp.broadcast_to(v[:1], v.shape)
        out[k] = v
    return out


def _compiled_draws(block, data, state, keys, duplicated):
    """The draws of every method and their log densities, jitted with the first key (twice)
    and vmapped over `keys`; with `duplicated` (data, state), also `resample` on them."""

    def draws(k):
        out = {method: gibbs.call_block(block, method, k, data, state) for method in DRAWS}
        for method in ("resample", "sample_prior"):
            out[f"log_prob({method})"] = gibbs.call_block(
                block, "log_prob", None, data, {**state, **out[method]})
        if duplicated is not None:
            out["duplicated"] = gibbs.call_block(block, "resample", k, *duplicated)
        return out

    try:
        single = jax.jit(draws, compiler_options=COMPILER_OPTIONS)
        first, again = single(keys[0]), single(keys[0])
        batched = jax.jit(jax.vmap(draws), compiler_options=COMPILER_OPTIONS)(keys)
    except Exception as error:  # noqa: BLE001 - any failure to trace is the finding
        _fail(block, "jit/vmap compatibility",
              f"jax.jit(jax.vmap(...)) over keys failed: {type(error).__name__}: {error}")
    return first, again, batched


def _differs_across_keys(batched) -> bool:
    batched = np.asarray(batched)
    return bool(np.any(batched != batched[:1]))


def _all_slices_equal(batched) -> np.ndarray:
    """Per key: are all entries along axis 1 (the draw's leading axis) identical?"""
    batched = np.asarray(batched)
    return np.all(batched == batched[:, :1], axis=tuple(range(1, batched.ndim)))


def _check_deterministic(block, method, first, again) -> None:
    for name in block.writes:
        if not np.array_equal(np.asarray(first[name]), np.asarray(again[name]), equal_nan=True):
            _fail(block, f"{method} is not deterministic",
                  f"two calls with the same key gave different {name!r}.")


def _check_vmap_matches_jit(block, method, first, batched, num_keys, rtol) -> None:
    """Vmapped over keys, the draw with the first key equals the jitted draw."""
    for name in block.writes:
        one, many = first[name], batched[name]
        if tuple(many.shape) != (num_keys, *one.shape):
            _fail(block, f"{method} under vmap", f"{name!r} has shape {many.shape} "
                  f"for {num_keys} keys; expected {(num_keys, *one.shape)}.")
        if jnp.issubdtype(one.dtype, jnp.inexact):
            scale = float(np.max(np.abs(np.asarray(one)), initial=0))
            same = np.allclose(np.asarray(many[0]), np.asarray(one), rtol=rtol,
                               atol=rtol * scale)
        else:
            same = np.array_equal(np.asarray(many[0]), np.asarray(one))
        if not same:
            _fail(block, f"{method} under vmap",
                  f"the vmapped draw of {name!r} with a key differs from the jitted draw "
                  "with the same key: the draw depends on the batch, not only the key.")


def _check_finite_draws(block, method, batched) -> None:
    for name in block.writes:
        values = batched[name]
        if jnp.issubdtype(values.dtype, jnp.inexact) and not np.all(np.isfinite(values)):
            _fail(block, f"{method} drew a non-finite value",
                  f"{name!r} has NaN or infinite entries.")


def _check_uses_key(block, method, batched, num_keys) -> None:
    if not any(_differs_across_keys(batched[name]) for name in block.writes):
        _fail(block, f"{method} ignores its key",
              f"{num_keys} different keys gave identical {list(block.writes)}; pass "
              "stochastic=False for a deterministic update.")


def _check_finite_log_prob(block, batched) -> None:
    for which in ("log_prob(resample)", "log_prob(sample_prior)"):
        values = np.asarray(batched[which])
        if not np.all(np.isfinite(values)):
            _fail(block, f"{which} is not finite", f"values {values}.")


def _check_leading_axis_keys(block, method, batched) -> None:
    """A global variable's entries along its leading axis are not all drawn with one key."""
    for name in block.writes:
        values = batched[name]
        if (values.ndim >= 2 and values.shape[1] >= 2 and name not in block.per_recording
                and jnp.issubdtype(values.dtype, jnp.inexact)
                and _differs_across_keys(values) and np.all(_all_slices_equal(values))):
            _fail(block, f"{method} shares one key along the leading axis of {name!r}",
                  f"its {values.shape[1]} entries are identical in every draw; split the "
                  "key, one child per entry.")


def _check_recording_keys(block, duplicated) -> None:
    """With every recording equal to the first, per-recording draws still differ."""
    values = [duplicated[name] for name in block.per_recording]
    if any(_differs_across_keys(v) for v in values) and all(
            np.all(_all_slices_equal(v)) for v in values):
        _fail(block, "resample shares one key between recordings",
              f"with every recording equal to the first, {list(block.per_recording)} were "
              "drawn identically for every recording and every key; fold in the recording "
              "index (moseq.core.recording_keys). If the data make the draws "
              "deterministic, pass check_recordings=False.")


# ---- 3. in a scheduler ------------------------------------------------------------------


def _check_sweep_keys(block, scheduler: GibbsScheduler, data, state, key) -> None:
    try:
        with jax.debug_key_reuse(True):
            jax.eval_shape(lambda k: gibbs.sweep(scheduler.bound_blocks, k, data, state), key)
    except jax.errors.KeyReuseError as error:
        _fail(block, "the sweep reuses a random key", str(error).splitlines()[0])


def _check_geweke(block, scheduler, data_shapes, num_samples, alpha, seed) -> GewekeReport:
    report = geweke_test(scheduler, data_shapes, num_samples, alpha=alpha, seed=seed)
    if not report.passed:  # a failure, or too few effective draws to judge
        verdict = "failed" if report.outcome == "fail" else "was inconclusive"
        _fail(block, f"Geweke test of its scheduler {verdict}", f"\n{report}")
    return report


def check_block(
    block: GibbsBlock,
    data: Mapping[str, Any],
    state: Mapping[str, Any],
    *,
    num_keys: int = 4,
    seed: int = 0,
    stochastic: bool = True,
    check_recordings: bool = True,
    scheduler: GibbsScheduler | None = None,
    data_shapes: Mapping[str, Any] | None = None,
    geweke_samples: int = 1000,
    alpha: float = 0.01,
    rtol: float = 1e-6,
) -> GewekeReport | None:
    """Check that `block` keeps the Gibbs block contract (see the module docstring).

    Args:
        block: the block, with its providers attached (a block you built, or
            `scheduler.block(name)`).
        data: data as the scheduler gives it: `"mask"` (N, T) and every data array the block
            reads, each with a leading recording axis.
        state: a state with every variable the block reads and its own current values
            (e.g. `scheduler.init(key, data)` or `scheduler.simulate(key, shapes)[1]`).
        num_keys: keys drawn at once under `vmap` (at least 2).
        stochastic: draws must differ between keys (False for a deterministic update).
        check_recordings: with every recording replaced by the first, per-recording draws
            must differ between recordings (one key per recording). Turn off when the data
            make the block's conditional practically deterministic.
        scheduler: a scheduler containing the block: its sweep is checked for key reuse, and
            it must pass `geweke_test(scheduler, data_shapes, geweke_samples)`.
        data_shapes: for the Geweke test (default `{"mask": data["mask"]}`).
        rtol: tolerance of vmapped against jitted float draws.

    Returns:
        The Geweke report when `scheduler` is given, else None. Raises `ContractError`.
    """
    if not isinstance(block, GibbsBlock):
        raise TypeError(f"`block` must be a GibbsBlock; got {type(block).__name__}.")
    if any(isinstance(p, Provider) for p in block.dependencies()):
        raise ValueError(f"{block.name} holds provider references (it comes from "
                         "`scheduler.blocks`); pass `scheduler.block(name)`, which has its "
                         "providers attached.")
    if num_keys < 2:
        raise ValueError("`num_keys` must be at least 2 (draws with different keys).")
    if "mask" not in data:
        raise ValueError("`data` must hold 'mask' (N, T), as the scheduler gives it.")
    data = {k: jnp.asarray(v) for k, v in data.items()}
    state = {k: jnp.asarray(v) for k, v in state.items()}
    missing = [v for v in block.writes if v not in state]
    if missing:
        raise ValueError(f"`state` must hold the block's current values; it lacks {missing} "
                         "(use scheduler.init or scheduler.simulate to make one).")
    num_recordings = int(data["mask"].shape[0])
    key = as_key(seed)

    traced = {method: _check_traced(block, method, data, state, key) for method in DRAWS}
    _check_traced(block, "log_prob", data, state, key)
    _check_stable_specs(block, state, traced)

    duplicated = None
    if check_recordings and block.per_recording and num_recordings >= 2:
        per_recording = set(block.per_recording) | {
            k for k, v in state.items() if v.ndim >= 2 and v.shape[0] == num_recordings}
        duplicated = (_duplicate_recordings(data, set(data), num_recordings),
                      _duplicate_recordings(state, per_recording, num_recordings))
    keys = jax.random.split(jax.random.fold_in(key, 1), num_keys)
    first, again, batched = _compiled_draws(block, data, state, keys, duplicated)
    for method in DRAWS:
        _check_deterministic(block, method, first[method], again[method])
        _check_finite_draws(block, method, batched[method])
        _check_vmap_matches_jit(block, method, first[method], batched[method], num_keys, rtol)
        if stochastic and method != "init":
            _check_uses_key(block, method, batched[method], num_keys)
    _check_finite_log_prob(block, batched)
    for method in ("resample", "sample_prior"):
        _check_leading_axis_keys(block, method, batched[method])
    if duplicated is not None:
        _check_recording_keys(block, batched["duplicated"])

    if scheduler is None:
        return None
    if block.name not in scheduler.block_names:
        raise ValueError(f"{block.name} is not a block of `scheduler` {scheduler.block_names}.")
    _check_sweep_keys(block, scheduler, data, state, key)
    return _check_geweke(block, scheduler, data_shapes or {"mask": data["mask"]},
                         geweke_samples, alpha, seed)
