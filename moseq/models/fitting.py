"""Fitting recipes on top of a model's `GibbsScheduler`: the staged fit (AR-only stage, then
the full model), applying a fitted model to new recordings, syllable marginals, and the
kappa scan that calibrates stickiness to a target syllable duration."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from moseq.blocks import HDPTransitions, HMMStates, StateLikelihoods, StickyDirTransitions
from moseq.core import GibbsScheduler
from moseq.core.block import GibbsBlock, State
from moseq.core.scheduler import PreparedData, as_key
from moseq.ops.checks import check_positive
from moseq.ops.sequences import get_durations

_AR_HMM_TYPES = (HDPTransitions, StickyDirTransitions, StateLikelihoods, HMMStates)

# Keys folded from the caller's key, named for what they key.
_STAGED_INIT, _AR_STAGE, _FULL_STAGE = 0, 1, 2  # fit_staged: init, AR-only stage, full stage
_APPLY_INIT, _APPLY_SWEEPS = 0, 1  # apply_model: init of the per-recording variables, sweeps
_SCAN_INIT, _SCAN_SWEEPS = 0, 1  # kappa_scan: the start every kappa shares, its sweeps


def _check_model(model) -> GibbsScheduler:
    if not isinstance(model, GibbsScheduler):
        raise TypeError(f"`model` must be a moseq.GibbsScheduler (e.g. moseq.models.arhmm(...)); "
                        f"got {type(model).__name__}.")
    return model


def _check_sweeps(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative int; got {value!r}.")
    return int(value)


def _transitions_index(model: GibbsScheduler) -> int:
    """Index of the block that writes the transition matrix `pi`."""
    for index, block in enumerate(model.blocks):
        if "pi" in block.writes:
            return index
    raise ValueError(f"`model` has no transitions block (none of {model.block_names} writes "
                     "'pi').")


def _is_ar_hmm_block(block: GibbsBlock) -> bool:
    return isinstance(block, _AR_HMM_TYPES) or "pi" in block.writes


def ar_only_frozen(model: GibbsScheduler) -> tuple[str, ...]:
    """Names of the blocks held fixed in the AR-only stage: every block other than the
    transitions, the state likelihoods (`ARDynamics`) and `HMMStates`, plus `model.frozen`.
    For `keypoint_slds` this is `AR_ONLY_FROZEN`; for an AR-HMM, `model.frozen`."""
    _check_model(model)
    names = {block.name for block in model.blocks if not _is_ar_hmm_block(block)}
    return tuple(sorted(names | set(model.frozen)))


def global_frozen(model: GibbsScheduler) -> tuple[str, ...]:
    """Names of the blocks that write only global (not per-recording) variables: the
    parameters held fixed when a fitted model is applied to new recordings."""
    _check_model(model)
    return tuple(sorted(block.name for block in model.blocks
                        if block.writes and not set(block.writes) & set(block.per_recording)))


def parameters(model: GibbsScheduler, state: Mapping[str, Array]) -> State:
    """The global variables of `state` (everything but `model.per_recording`): what
    `apply_model` needs from a fit, e.g. betas, pi, Ab, Q (and Cd, sigmasq)."""
    _check_model(model)
    per_recording = model.per_recording
    names = [v for block in model.blocks for v in block.writes if v not in per_recording]
    missing = [v for v in names if v not in state]
    if missing:
        raise ValueError(f"`params` lacks the fitted parameters {missing}; pass the state a "
                         "fit returned (or its global variables).")
    return {v: state[v] for v in names}


def with_kappa(model: GibbsScheduler, kappa: float) -> GibbsScheduler:
    """`model` with its transitions block's stickiness `kappa` replaced (a new scheduler;
    the old one is unchanged). Larger kappa, longer syllables.

    The new kappa is stored as a 0-d array, so it is traced, not compiled in: schedulers
    that differ only in kappa share their compiled sweeps (a kappa scan compiles once).
    """
    _check_model(model)
    check_positive("kappa", kappa, allow_zero=True)
    index = _transitions_index(model)
    if not hasattr(model.blocks[index], "kappa"):
        raise ValueError(f"`model`'s transitions block {model.block_names[index]} has no "
                         "`kappa` hyperparameter.")
    return eqx.tree_at(lambda m: m.blocks[index].kappa, model,
                       jnp.asarray(kappa, dtype=jnp.result_type(float)))


def _maybe_kappa(model: GibbsScheduler, kappa: float | None) -> GibbsScheduler:
    return model if kappa is None else with_kappa(model, kappa)


def _check_run_kwargs(run_kwargs: Mapping, function: str, owned: Sequence[str]) -> None:
    clash = sorted(set(run_kwargs) & set(owned))
    if clash:
        raise TypeError(f"{function} sets {clash} itself; drop them from its keyword arguments.")


def staged_init(model: GibbsScheduler, key, data: Mapping[str, Array], *,
                ar_kappa: float | None = None) -> State:
    """The state a staged fit starts from: `model.init(fold_in(key, 0), data)` with the
    AR-only stage's kappa (`ar_kappa`; None keeps the model's). `fit_staged` starts here
    unless given a `state`; call it to keep (e.g. checkpoint) the start before any sweep."""
    _check_model(model)
    return _maybe_kappa(model, ar_kappa).init(jax.random.fold_in(as_key(key), _STAGED_INIT),
                                              data)


def fit_staged(model: GibbsScheduler, key, data: Mapping[str, Array], *, ar_sweeps: int = 50,
               full_sweeps: int = 500, ar_kappa: float | None = None,
               full_kappa: float | None = None, state: State | None = None,
               start_sweep: int = 0, trace: Mapping[str, np.ndarray] | None = None,
               ar_frozen: Sequence[str] | None = None, callbacks: Sequence[Callable] = (),
               stage_callbacks: Sequence[Callable] = (), **run_kwargs
               ) -> tuple[State, dict[str, np.ndarray]]:
    """Staged fit: `ar_sweeps` of the AR-only stage, then `full_sweeps` of the full model.

    The AR-only stage runs the same scheduler with the observation-side blocks frozen
    (`ar_frozen`, default `ar_only_frozen(model)`: for keypoint_slds `AR_ONLY_FROZEN`, so
    only the transitions, `Ab`/`Q` and `z` move); the full stage holds only `model.frozen`.
    `ar_kappa` / `full_kappa` replace the stickiness in each stage (keypoint-MoSeq practice:
    1e6 for the AR-only stage, about 1e4 for the full model); None keeps the model's.

    Keys: init, stage 1 and stage 2 use `fold_in(key, 0)`, `fold_in(key, 1)` and
    `fold_in(key, 2)`, and sweep s of a stage `fold_in(stage_key, s)`, with sweeps numbered
    on across the stages (the full stage starts at sweep `ar_sweeps`). So the fit is
    reproducible, and resumable bit for bit: given the `state` after sweep `start_sweep - 1`
    (and, to continue the trace, `trace` of sweeps 0 .. start_sweep - 1), it continues in the
    AR-only stage (`start_sweep < ar_sweeps`), at the switch (`start_sweep == ar_sweeps`) or
    in the full stage, and a finished fit is extended by raising `full_sweeps`. With
    `start_sweep` 0, a given `state` replaces `staged_init(model, key, data, ar_kappa=...)`.

    `callbacks`: `fn(sweeps_done, state, trace)` after each chunk of either stage, `trace`
    that of the whole fit so far (as returned), so `trace["stage"][-1]` is the stage.
    `stage_callbacks`: `fn(stage, start_sweep, end_sweep)` as a stage begins, before its
    first sweep (which compiles the stage's programs), e.g. a progress display
    (`moseq.pipeline.ProgressBar.begin`). Other keywords go to `model.run` (chunk_size,
    summaries, progress).

    Returns the final state and the trace (the given `trace`, then every sweep run), with
    `trace["stage"]` ("ar" or "full") per sweep. The log joint is that of the stage's model
    (its kappa).
    """
    _check_model(model)
    ar_sweeps = _check_sweeps("ar_sweeps", ar_sweeps)
    full_sweeps = _check_sweeps("full_sweeps", full_sweeps)
    start_sweep = _check_sweeps("start_sweep", start_sweep)
    total = ar_sweeps + full_sweeps
    if start_sweep > total:
        raise ValueError(f"`start_sweep` ({start_sweep}) is beyond ar_sweeps + full_sweeps = "
                         f"{total}; raise `full_sweeps` to at least {start_sweep - ar_sweeps}.")
    if start_sweep and state is None:
        raise ValueError("`start_sweep` > 0 resumes a fit: pass the `state` after sweep "
                         "start_sweep - 1 (and its `trace`).")
    _check_run_kwargs(run_kwargs, "fit_staged", ("frozen",))
    ar_frozen = ar_only_frozen(model) if ar_frozen is None else ar_frozen  # run checks it
    key = as_key(key)
    data = model.prepare(data)  # once for both stages (they differ only in kappa)
    if state is None:
        state = staged_init(model, key, data, ar_kappa=ar_kappa)
    traces = [trace or {}]
    stages = (("ar", _maybe_kappa(model, ar_kappa), _AR_STAGE, 0, ar_sweeps, ar_frozen),
              ("full", _maybe_kappa(model, full_kappa), _FULL_STAGE, ar_sweeps, total, None))
    for stage, stage_model, fold, first, end, frozen in stages:
        start = max(start_sweep, first)
        if start >= end:
            continue

        def on_chunk(sweeps_done, chunk_state, stage_trace, stage=stage, earlier=tuple(traces)):
            whole = concat_traces([*earlier, _staged(stage_trace, stage)])
            for callback in callbacks:
                callback(sweeps_done, chunk_state, whole)

        for stage_callback in stage_callbacks:
            stage_callback(stage, start, end)
        state, stage_trace = stage_model.run(
            jax.random.fold_in(key, fold), data, state, end - start, start_sweep=start,
            frozen=frozen, callbacks=[on_chunk] if callbacks else (), **run_kwargs)
        traces.append(_staged(stage_trace, stage))
    return state, concat_traces(traces)


def _staged(trace: Mapping[str, np.ndarray], stage: str) -> dict[str, np.ndarray]:
    """A stage's trace with `stage` per sweep."""
    return {**trace, "stage": np.full(len(trace.get("log_joint", ())), stage, dtype="<U4")}


def concat_traces(traces: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """`fit_staged` traces of consecutive sweeps, concatenated (empty ones skipped); of no
    sweeps, `{"log_joint": (0,), "stage": (0,)}`."""
    traces = [t for t in traces if len(t.get("log_joint", ()))]
    if not traces:
        return {"log_joint": np.zeros(0), "stage": np.zeros(0, "<U4")}
    return {k: np.concatenate([np.asarray(t[k]) for t in traces]) for k in traces[0]}


def _states_block(model: GibbsScheduler) -> HMMStates:
    for block in model.bound_blocks:
        if isinstance(block, HMMStates):
            return block
    raise ValueError(f"`model` has no HMMStates block (blocks: {model.block_names}).")


def syllable_marginals(model: GibbsScheduler, data: Mapping[str, Array], state: State
                       ) -> tuple[Float[Array, "N T-L K"], Int[Array, "N T-L"]]:
    """Marginal syllable probabilities given the rest of `state` (forward-backward smoothing,
    `HMMStates.marginals`) and the most probable syllable of every frame.

    Returns `(marginals (N, T - L, K), syllables (N, T - L))`; entry i labels frame i + L,
    as in `state["z"]`. Mask frames with `data["mask"][:, L:]` before summarising.
    """
    _check_model(model)
    _, arrays = _prepared(model, data)
    probs = _marginals(_states_block(model), arrays, _state_for(model, state))
    return probs, jnp.argmax(probs, axis=-1)


def _prepared(model: GibbsScheduler, data: Mapping[str, Array] | PreparedData
              ) -> tuple[PreparedData, dict]:
    """The data laid out once for `model` (`model.prepare`), and its arrays without the
    rows that pad the recordings to the mesh."""
    prepared = model.prepare(data)
    rows = prepared.num_recordings
    return prepared, {k: prepared.arrays[k][:rows] for k in model.data_keys}


def _state_for(model: GibbsScheduler, state: Mapping[str, Array]) -> dict:
    variables = [v for block in model.blocks for v in block.writes]
    missing = [v for v in variables if v not in state]
    if missing:
        raise ValueError(f"`state` lacks {missing}; pass a full state of this model.")
    return {v: jnp.asarray(state[v]) for v in variables}


@eqx.filter_jit
def _marginals(block: HMMStates, data, state):
    return block.marginals(data, state)


@dataclasses.dataclass(frozen=True)
class AppliedModel:
    """What `apply_model` returns.

    Attributes:
        state: the final state (parameters as given, per-recording variables resampled).
        trace: `model.run`'s trace of the sweeps ("log_joint", summaries).
        marginals: (N, T - L, K) syllable probabilities averaged over the last
            `marginal_sweeps` sweeps, or None when `marginal_sweeps == 0`.
        syllables: (N, T - L) most probable syllable per frame (argmax of `marginals`), or
            None.
    """

    state: State
    trace: dict
    marginals: Array | None
    syllables: Array | None


def apply_model(model: GibbsScheduler, key, data: Mapping[str, Array],
                params: Mapping[str, Array], num_sweeps: int = 20, *,
                marginal_sweeps: int = 1, **run_kwargs) -> AppliedModel:
    """Apply a fitted model to (new) recordings: its parameters fixed, only the per-recording
    variables (`z`, and for keypoint models `x`, `h`, `v`, `s`) initialised and resampled.

    `params` is a fitted state or its global variables (`parameters(model, state)`); the
    per-recording entries of a full state are ignored. The run starts from
    `model.init(fold_in(key, 0), data, given=params)` and runs `num_sweeps` sweeps with key
    `fold_in(key, 1)`, every block that writes only global variables frozen
    (`global_frozen(model)`). The marginal syllable probabilities are averaged over the
    states after the last `marginal_sweeps` sweeps (1: the final state; 0: none computed;
    with `num_sweeps == 0`, those of the initial state). Other keywords go to `model.run`.
    """
    _check_model(model)
    num_sweeps = _check_sweeps("num_sweeps", num_sweeps)
    marginal_sweeps = _check_sweeps("marginal_sweeps", marginal_sweeps)
    if marginal_sweeps > max(num_sweeps, 1):
        raise ValueError(f"`marginal_sweeps` ({marginal_sweeps}) must be at most num_sweeps "
                         f"({num_sweeps}).")
    _check_run_kwargs(run_kwargs, "apply_model", ("frozen", "start_sweep"))
    given = parameters(model, params)
    key = as_key(key)
    data, arrays = _prepared(model, data)  # prepared and padded once for every sweep
    state = model.init(jax.random.fold_in(key, _APPLY_INIT), data, given=given)
    frozen = global_frozen(model)
    run_key = jax.random.fold_in(key, _APPLY_SWEEPS)
    averaged = min(marginal_sweeps, num_sweeps)
    state, trace = model.run(run_key, data, state, num_sweeps - averaged, frozen=frozen,
                             **run_kwargs)
    traces = [trace]
    if not marginal_sweeps:
        return AppliedModel(state, trace, None, None)
    block = _states_block(model)
    total, count = None, 0
    if not num_sweeps:
        total, count = _marginals(block, arrays, _state_for(model, state)), 1
    for sweep in range(num_sweeps - averaged, num_sweeps):
        # One sweep per call, numbered as in one run of num_sweeps: the same chain.
        state, trace = model.run(run_key, data, state, 1, start_sweep=sweep, frozen=frozen,
                                 **run_kwargs)
        traces.append(trace)
        probs = _marginals(block, arrays, _state_for(model, state))
        total, count = (probs if total is None else total + probs), count + 1
    traces = [t for t in traces if t]
    trace = {k: np.concatenate([t[k] for t in traces]) for k in traces[0]} if traces else {}
    marginals = total / count
    return AppliedModel(state, trace, marginals, jnp.argmax(marginals, axis=-1))


@dataclasses.dataclass(frozen=True)
class KappaScanRow:
    """One kappa of `kappa_scan`.

    Attributes:
        kappa: the stickiness.
        median_duration: median syllable duration in frames (runs of the fitted `z`).
        median_duration_s: the same in seconds (None without `fps`).
        mean_duration: mean syllable duration in frames.
        num_syllables: number of distinct states used by the fitted `z` (unmasked frames).
        log_joint: log joint after the last sweep.
        state: the fitted state (None unless `keep_states`).
    """

    kappa: float
    median_duration: float
    median_duration_s: float | None
    mean_duration: float
    num_syllables: int
    log_joint: float
    state: State | None = None


def kappa_scan(model: GibbsScheduler, key, data: Mapping[str, Array], kappas: Sequence[float],
               num_sweeps: int = 100, *, fps: float | None = None, stage: str = "ar",
               state: State | None = None, keep_states: bool = False, **run_kwargs
               ) -> list[KappaScanRow]:
    """Fit the model at each kappa and report the median syllable duration.

    Every kappa starts from the same state (`state`, or `model.init(fold_in(key, 0), data)`)
    and runs `num_sweeps` sweeps with key `fold_in(key, 1)`; `stage="ar"` holds the
    observation-side blocks fixed (`ar_only_frozen`, the fast AR-only fit keypoint-MoSeq
    calibrates on), `stage="full"` runs the full model (`model.frozen`). Durations are the
    runs of the final `z` over unmasked frames (`moseq.ops.sequences.get_durations`); with
    `fps` also in seconds. Pick the kappa whose median is nearest the target duration
    (keypoint-MoSeq users aim at about 0.3-0.4 s).

    Returns one `KappaScanRow` per kappa, in the order given.
    """
    _check_model(model)
    num_sweeps = _check_sweeps("num_sweeps", num_sweeps)
    kappas = [float(k) for k in np.atleast_1d(np.asarray(kappas, dtype=float))]
    if not kappas:
        raise ValueError("`kappas` must hold at least one value.")
    for kappa in kappas:
        check_positive("kappas", kappa, allow_zero=True)
    if fps is not None:
        check_positive("fps", fps)
    if stage not in ("ar", "full"):
        raise ValueError(f"`stage` must be 'ar' or 'full'; got {stage!r}.")
    _check_run_kwargs(run_kwargs, "kappa_scan", ("frozen", "start_sweep"))
    frozen = ar_only_frozen(model) if stage == "ar" else model.frozen
    key = as_key(key)
    mask = np.asarray(data["mask"])
    data = model.prepare(data)  # once for every kappa
    rows = []
    for kappa in kappas:
        scanned = with_kappa(model, kappa)
        start = state if state is not None else scanned.init(
            jax.random.fold_in(key, _SCAN_INIT), data)
        fitted, trace = scanned.run(jax.random.fold_in(key, _SCAN_SWEEPS), data, start,
                                    num_sweeps, frozen=frozen, **run_kwargs)
        z = np.asarray(fitted["z"])
        durations = get_durations(z, mask)
        median = float(np.median(durations)) if durations.size else float("nan")
        used = mask[:, mask.shape[1] - z.shape[1]:] > 0
        log_joint = (float(trace["log_joint"][-1]) if num_sweeps
                     else float(scanned.log_joint(data, fitted)))
        rows.append(KappaScanRow(
            kappa=kappa,
            median_duration=median,
            median_duration_s=None if fps is None else median / fps,
            mean_duration=float(np.mean(durations)) if durations.size else float("nan"),
            num_syllables=int(np.unique(z[used]).size),
            log_joint=log_joint,
            state=fitted if keep_states else None,
        ))
    return rows
