"""`check_block`: does a Gibbs block keep the `GibbsBlock` contract?

The checks are mechanical (they do not test the maths; `geweke_test` and `sbc` do):

* `init`, `resample` and `sample_prior` return a dict of exactly the declared `writes`, with
  the shapes and dtypes of the current state (so a sweep can run in `lax.scan`), and read
  only what they declare (`reads` plus the providers' variables, `init_reads`, `prior_reads`);
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

from moseq.core.block import RECORDING_INDEX, GibbsBlock
from moseq.core.scheduler import GibbsScheduler, _resample_all, as_key
from moseq.testing.geweke import COMPILER_OPTIONS, GewekeReport, geweke_test

__all__ = ["ContractError", "check_block"]


class ContractError(AssertionError):
    """A block breaks the `GibbsBlock` contract; the message names the block and property."""


def _fail(block: GibbsBlock, prop: str, detail: str):
    raise ContractError(f"{block.name}: {prop}: {detail}")


def _spec(value) -> tuple[tuple[int, ...], Any]:
    return tuple(np.shape(value)), jnp.result_type(value)


def _allowed_reads(block: GibbsBlock) -> set[str]:
    allowed = set(block.reads) | set(block.writes)
    pending = list(block.dependencies())
    while pending:
        provider = pending.pop()
        allowed |= set(provider.reads) | set(provider.writes)
        pending.extend(provider.dependencies())
    return allowed


def _per_recording_names(block: GibbsBlock) -> set[str]:
    names = set(block.per_recording)
    for provider in block.dependencies():
        names |= set(provider.per_recording)
    return names


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


def _call(block, method, fn, inputs: dict[str, Mapping], key, *, declared=None):
    """Trace `fn(key)` (shapes only, under key-reuse checking); check the returned dict and
    that `inputs` are unchanged. `KeyError`s are reported as undeclared reads."""
    snapshots = {name: _Snapshot(tree) for name, tree in inputs.items()}
    try:
        with jax.debug_key_reuse(True):
            out = jax.eval_shape(fn, key)
    except KeyError as error:
        _fail(block, f"{method} reads an undeclared variable",
              f"it looked up {error.args[0]!r}, which is not in its declared reads "
              f"({declared}); add it to the class attribute.")
    except jax.errors.KeyReuseError as error:
        _fail(block, f"{method} reuses a random key",
              f"{str(error).splitlines()[0]} Split the key (jax.random.split) and use each "
              "child once.")
    except Exception as error:  # noqa: BLE001 - any failure to trace is the finding
        _fail(block, f"{method} does not trace under jax.jit",
              f"{type(error).__name__}: {str(error).splitlines()[0]} (host-side Python or "
              "NumPy on traced values? use jnp and lax control flow).")
    for name, snapshot in snapshots.items():
        change = snapshot.changed(inputs[name])
        if change:
            _fail(block, f"{method} mutated its input", f"in `{name}`, {change}; blocks must "
                  "return new values and never change their arguments.")
    if not isinstance(out, dict):
        _fail(block, f"{method} must return a dict", f"got {type(out).__name__}.")
    if set(out) != set(block.writes):
        _fail(block, f"{method} must return exactly the declared writes",
              f"returned {sorted(out)}, declares {sorted(block.writes)}.")
    return out


def _duplicate_recordings(tree: Mapping, names, num_recordings: int) -> dict:
    """Every recording replaced by recording 0 (for arrays named in `names`)."""
    out = {}
    for k, v in tree.items():
        v = jnp.asarray(v)
        if k in names and k != RECORDING_INDEX and v.ndim >= 1 and v.shape[0] == num_recordings:
            v = jnp.broadcast_to(v[:1], v.shape)
        out[k] = v
    return out


def _all_slices_equal(batched) -> np.ndarray:
    """Per key: are all entries along axis 1 (the draw's leading axis) identical?"""
    batched = np.asarray(batched)
    return np.all(batched == batched[:, :1], axis=tuple(range(1, batched.ndim)))


def _differs_across_keys(batched) -> bool:
    batched = np.asarray(batched)
    return bool(np.any(batched != batched[:1]))


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
        block: the block.
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
    allowed = _allowed_reads(block)
    read_state = {k: v for k, v in state.items() if k in allowed}
    init_state = {k: v for k, v in state.items() if k in set(block.init_reads)}
    parents = {k: v for k, v in state.items() if k in set(block.prior_reads)}
    prior_input = {**data, **parents}

    # 1. Structure, declared reads, purity and key reuse: traced once, nothing compiled.
    resampled = _call(block, "resample", lambda k: block.resample(k, data, read_state),
                      {"data": data, "state": read_state}, key,
                      declared=f"reads + providers' variables {sorted(allowed)}")
    prior = _call(block, "sample_prior", lambda k: block.sample_prior(k, prior_input),
                  {"state": prior_input}, key,
                  declared=f"prior_reads {block.prior_reads} and the data")
    initial = _call(block, "init", lambda k: block.init(k, data, init_state),
                    {"data": data, "state": init_state}, key,
                    declared=f"init_reads {block.init_reads} and the data")
    try:
        log_prob = jax.eval_shape(lambda: block.log_prob(data, read_state))
    except KeyError as error:
        _fail(block, "log_prob reads an undeclared variable",
              f"it looked up {error.args[0]!r}; declare it in `reads`.")
    if np.shape(log_prob) != () or not jnp.issubdtype(log_prob.dtype, jnp.floating):
        _fail(block, "log_prob must return a float scalar",
              f"got shape {np.shape(log_prob)}, dtype {log_prob.dtype}.")
    for name in block.writes:
        current = _spec(state[name])
        for method, out in (("resample", resampled), ("sample_prior", prior),
                            ("init", initial)):
            if _spec(out[name]) != current:
                _fail(block, f"{method} changed the shape or dtype of {name!r}",
                      f"the state has {current[0]} {current[1]}, {method} returned "
                      f"{_spec(out[name])[0]} {_spec(out[name])[1]}; a sweep in lax.scan "
                      "needs them stable.")

    # 2. Compiled: one jitted draw per method, and the same draws vmapped over keys.
    per_recording = _per_recording_names(block) | {
        k for k, v in state.items() if v.ndim >= 2 and v.shape[0] == num_recordings}
    duplicated_data = _duplicate_recordings(data, set(data), num_recordings)
    duplicated_state = _duplicate_recordings(read_state, per_recording, num_recordings)
    recording_outputs = [v for v in block.per_recording] if num_recordings >= 2 else []

    def draws(k):
        res = block.resample(k, data, read_state)
        pri = block.sample_prior(k, prior_input)
        ini = block.init(k, data, init_state)
        out = {"resample": res, "sample_prior": pri, "init": ini,
               "log_prob(resample)": block.log_prob(data, {**read_state, **res}),
               "log_prob(sample_prior)": block.log_prob(data, {**read_state, **pri})}
        if check_recordings and recording_outputs:
            out["duplicated"] = block.resample(k, duplicated_data, duplicated_state)
        return out

    keys = jax.random.split(jax.random.fold_in(key, 1), num_keys)
    try:
        single = jax.jit(draws, compiler_options=COMPILER_OPTIONS)
        first = single(keys[0])
        again = single(keys[0])
        batched = jax.jit(jax.vmap(draws), compiler_options=COMPILER_OPTIONS)(keys)
    except ContractError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure to trace is the finding
        _fail(block, "jit/vmap compatibility",
              f"jax.jit(jax.vmap(...)) over keys failed: {type(error).__name__}: {error}")

    for method in ("resample", "sample_prior", "init"):
        for name in block.writes:
            one, twice, many = first[method][name], again[method][name], batched[method][name]
            if not np.array_equal(np.asarray(one), np.asarray(twice), equal_nan=True):
                _fail(block, f"{method} is not deterministic",
                      f"two calls with the same key gave different {name!r}.")
            if tuple(many.shape) != (num_keys, *one.shape):
                _fail(block, f"{method} under vmap", f"{name!r} has shape {many.shape} "
                      f"for {num_keys} keys; expected {(num_keys, *one.shape)}.")
            if jnp.issubdtype(one.dtype, jnp.inexact):
                if not np.all(np.isfinite(np.asarray(many))):
                    _fail(block, f"{method} drew a non-finite value",
                          f"{name!r} has NaN or infinite entries.")
                same = np.allclose(np.asarray(many[0]), np.asarray(one), rtol=rtol,
                                   atol=rtol * float(np.max(np.abs(np.asarray(one)), initial=0)))
            else:
                same = np.array_equal(np.asarray(many[0]), np.asarray(one))
            if not same:
                _fail(block, f"{method} under vmap",
                      f"the vmapped draw of {name!r} with a key differs from the jitted draw "
                      "with the same key: the draw depends on the batch, not only the key.")
        if stochastic and method != "init" and not any(
                _differs_across_keys(batched[method][name]) for name in block.writes):
            _fail(block, f"{method} ignores its key",
                  f"{num_keys} different keys gave identical {list(block.writes)}; pass "
                  "stochastic=False for a deterministic update.")
    for which in ("log_prob(resample)", "log_prob(sample_prior)"):
        values = np.asarray(batched[which])
        if not np.all(np.isfinite(values)):
            _fail(block, f"{which} is not finite", f"values {values}.")

    # 3. Shared keys: identical slices in every draw although draws differ between keys.
    for method in ("resample", "sample_prior"):
        for name in block.writes:
            values = batched[method][name]
            if (values.ndim >= 2 and values.shape[1] >= 2 and name not in block.per_recording
                    and jnp.issubdtype(values.dtype, jnp.inexact)
                    and _differs_across_keys(values) and np.all(_all_slices_equal(values))):
                _fail(block, f"{method} shares one key along the leading axis of {name!r}",
                      f"its {values.shape[1]} entries are identical in every draw; split the "
                      "key, one child per entry.")
    if "duplicated" in batched:
        values = [batched["duplicated"][name] for name in recording_outputs]
        if any(_differs_across_keys(v) for v in values) and all(
                np.all(_all_slices_equal(v)) for v in values):
            _fail(block, "resample shares one key between recordings",
                  f"with every recording equal to the first, {recording_outputs} were drawn "
                  "identically for every recording and every key; fold in the recording "
                  "index (moseq.core.recording_keys). If the data make the draws "
                  "deterministic, pass check_recordings=False.")

    # 4. In a scheduler: the whole sweep's keys, and a short Geweke test.
    if scheduler is None:
        return None
    if block.name not in scheduler.block_names:
        raise ValueError(f"{block.name} is not a block of `scheduler` {scheduler.block_names}.")
    full_state = {**state}
    try:
        with jax.debug_key_reuse(True):
            jax.eval_shape(lambda k: _resample_all(scheduler, k, data, full_state, ()), key)
    except jax.errors.KeyReuseError as error:
        _fail(block, "the sweep reuses a random key", str(error).splitlines()[0])
    report = geweke_test(scheduler, data_shapes or {"mask": data["mask"]}, geweke_samples,
                         alpha=alpha, seed=seed)
    if not report.passed:
        _fail(block, "Geweke test of its scheduler failed", f"\n{report}")
    return report
