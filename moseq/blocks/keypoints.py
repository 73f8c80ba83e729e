"""The keypoint-SLDS observation model and its pose variables, one block each.

Keypoints `Y` (N, T, k, d) are seen through an egocentric pose: with the Helmert basis Γ
(k, k-1) and the emission matrix `Cd` ((k-1) d, D+1), the aligned pose of frame t is
ȳ_t = Γ reshape(Cd [x_t; 1], (k-1, d)) (zero mean over keypoints), and

    Y_{t,k} ~ N(R(h_t) ȳ_{t,k} + v_t, s_{t,k} σ²_k I_d),

with heading `h` (N, T), centroid `v` (N, T, d), per-keypoint variance `sigmasq` (k,) and
per-frame-per-keypoint scales `s` (N, T, k). R(h) turns in the horizontal plane: the x-y
plane in 2-D, in 3-D the plane normal to `vertical_axis` (z by default; see
`moseq.ops.geometry`). Masked frames carry no observation: their pose variables follow the
prior.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from moseq.blocks.emissions import least_squares_latents
from moseq.blocks.providers import GaussianEmissions
from moseq.core.block import Data, GibbsBlock, State, recording_keys, recording_span
from moseq.core.reduce import sum_over_recordings
from moseq.ops.checks import check_pca_frames, check_positive
from moseq.ops.densities import scaled_inv_chi2_log_prob
from moseq.ops.distributions import sample_scaled_inv_chi2
from moseq.ops.geometry import (
    align_egocentric,
    center_embedding,
    inverse_rigid_transform,
    rigid_transform,
)
from moseq.ops.keypoints import (
    heading_natural_params,
    interpolate_missing,
    noise_prior_scale,
    pca_from_moments,
    random_walk_log_prob,
    sample_random_walk,
    sample_von_mises,
)
from moseq.ops.linalg import apply_affine


class KeypointObservations(GaussianEmissions):
    """The keypoint likelihood, its emission matrix `Cd` and per-keypoint variances.

    Variables: `Cd` ((k-1) d, D+1), held at its initial value (the whitened PCA of the
    aligned, embedded keypoints over confident frames, as keypoint-MoSeq does), and
    `sigmasq` (k,), initialised to `sigmasq_init` with prior Scaled-Inv-χ²(nu_sigma,
    sigmasq_0) and conditional Scaled-Inv-χ²(nu_sigma + d n, (nu_sigma sigmasq_0 +
    Σ_t |Y_{t,k} - Ŷ_{t,k}|² / s_{t,k}) / (nu_sigma + d n)) over the n unmasked frames.
    For `KalmanLatents` it provides the de-rotated, de-centred keypoints as linear-Gaussian
    observations of x.

    Data preparation: NaN keypoints in unmasked frames are interpolated over time and get
    confidence 0; `conf` defaults to ones. Before `init`, the PCA's frames are checked
    (`moseq.ops.checks.check_pca_frames`); `keypoint_names`, when given, name the keypoints in
    the messages.
    """

    latent_dim: int = eqx.field(static=True)
    anterior: tuple[int, ...] = eqx.field(static=True)
    posterior: tuple[int, ...] = eqx.field(static=True)
    num_keypoints: int | None = eqx.field(static=True, default=None)
    keypoint_dim: int = eqx.field(static=True, default=2)
    vertical_axis: int = eqx.field(static=True, default=2)
    whiten: bool = eqx.field(static=True, default=True)
    keypoint_names: tuple[str, ...] | None = eqx.field(static=True, default=None)
    conf_threshold: float = 0.5
    nu_sigma: float = 1e5
    sigmasq_0: float = 0.1
    sigmasq_init: float = 1.0

    writes: ClassVar = ("Cd", "sigmasq")
    reads: ClassVar = ("Y", "mask", "x", "v", "h", "s", "Cd", "sigmasq")
    init_reads: ClassVar = ("Y", "conf", "mask", "v", "h")
    prior_reads: ClassVar = ("mask",)

    def __check_init__(self):
        if not self.anterior or not self.posterior:
            raise ValueError("`anterior` and `posterior` must each name at least one keypoint "
                             "index (they define the heading).")
        if set(self.anterior) == set(self.posterior):
            raise ValueError(f"`anterior` and `posterior` are the same keypoints "
                             f"{sorted(self.anterior)}, so the heading (from posterior to "
                             "anterior) is undefined; name front and back keypoints.")
        if self.keypoint_dim not in (2, 3):
            raise ValueError(f"`keypoint_dim` must be 2 or 3; got {self.keypoint_dim}.")
        if self.vertical_axis not in (0, 1, 2):
            raise ValueError(f"`vertical_axis` must be 0, 1 or 2 (x, y or z: the axis the "
                             f"heading turns about in 3-D); got {self.vertical_axis!r}.")
        for name in ("nu_sigma", "sigmasq_0", "sigmasq_init"):
            check_positive(name, getattr(self, name))

    # ---- data ------------------------------------------------------------------------------

    def check_data(self, data):
        shape = np.shape(data["Y"])
        if len(shape) != 4 or shape[-1] not in (2, 3):
            raise ValueError(f"`data['Y']` must have shape (N, T, num_keypoints, 2 or 3); got "
                             f"{shape}.")
        k, d = shape[-2:]
        if self.keypoint_names is not None and len(self.keypoint_names) != k:
            raise ValueError(f"`data['Y']` has {k} keypoints; this model was built for the "
                             f"{len(self.keypoint_names)} keypoints {list(self.keypoint_names)}.")
        if self.num_keypoints not in (None, k) or d != self.keypoint_dim:
            raise ValueError(f"`data['Y']` has {k} keypoints in {d}-D; this model was built for "
                             f"{self.num_keypoints or 'any number of'} keypoints in "
                             f"{self.keypoint_dim}-D (keypoint_dim=).")
        bad = [i for i in (*self.anterior, *self.posterior) if not 0 <= i < k]
        if bad:
            raise ValueError(f"anterior/posterior keypoint indices {bad} are out of range for "
                             f"{k} keypoints.")
        if (self.latent_dim > (k - 1) * d):
            raise ValueError(f"`latent_dim` = {self.latent_dim} exceeds the (k-1) d = "
                             f"{(k - 1) * d} dimensions of an aligned pose; lower it.")
        if "conf" in data and np.shape(data["conf"]) != shape[:-1]:
            raise ValueError(f"`data['conf']` must have shape {shape[:-1]} (N, T, "
                             f"num_keypoints); got {np.shape(data['conf'])}.")

    def check_init_data(self, data):
        """Enough frames with every keypoint above `conf_threshold` for the PCA behind `Cd`
        (raises if too few; warns if few, or if keypoints are mostly below it), and a pose:
        keypoints that coincide in every observed frame have none (and no heading)."""
        k, d = np.shape(data["Y"])[-2:]
        observed = np.asarray(data["Y"])[np.asarray(data["mask"]) > 0]  # (frames, k, d)
        if observed.size and np.all(observed == observed[:, :1]):
            raise ValueError(
                "Every keypoint of `data['Y']` is at the same point in every observed frame: "
                "the keypoints have no pose to model and no heading. Check the tracking file "
                "and the keypoints chosen (`data.keypoints`, --keypoints).")
        check_pca_frames(data["conf"], data["mask"], self.conf_threshold, self.latent_dim,
                         (k - 1) * d, self.keypoint_names)

    def prepare_data(self, data: Data) -> Data:
        """Fill NaN keypoints of unmasked frames by interpolation over the observed frames
        (confidence 0 there) and overwrite masked frames the same way, so no value of a
        masked frame is ever read; conf defaults to ones."""
        Y = np.asarray(data["Y"])
        conf = (np.ones(Y.shape[:-1], Y.dtype) if data.get("conf") is None
                else np.asarray(data["conf"], Y.dtype))
        masked = np.broadcast_to((np.asarray(data["mask"]) <= 0)[..., None], Y.shape[:-1])
        gaps = np.isnan(Y).any(-1) & ~masked
        missing = gaps | masked
        if missing.any():
            Y = interpolate_missing(Y, missing).astype(Y.dtype)
            conf = np.where(gaps, 0.0, conf).astype(Y.dtype)
        return {**data, "Y": Y, "conf": np.clip(np.nan_to_num(conf), 0.0, 1.0)}

    # ---- geometry --------------------------------------------------------------------------

    def _embedding(self, num_keypoints: int, dtype) -> Array:
        """Γ ⊗ I_d (k d, (k-1) d): embedded pose coordinates to centred keypoints."""
        return jnp.asarray(np.kron(center_embedding(num_keypoints), np.eye(self.keypoint_dim)),
                           dtype)

    def aligned_pose(self, state: State, num_keypoints: int) -> Float[Array, "N T k d"]:
        """ȳ = Γ reshape(Cd [x; 1], (k-1, d)): the egocentric pose of every frame."""
        flat = apply_affine(state["x"], state["Cd"])
        G = self._embedding(num_keypoints, flat.dtype)
        return (flat @ G.T).reshape(*flat.shape[:-1], num_keypoints, self.keypoint_dim)

    def egocentric(self, Y: Float[Array, "N T k d"], state: State) -> Float[Array, "N T k d"]:
        """R(-h) (Y - v): the keypoints in the animal's frame."""
        return inverse_rigid_transform(Y, state["v"], state["h"], self.vertical_axis)

    def predicted(self, state: State, num_keypoints: int) -> Float[Array, "N T k d"]:
        """Ŷ = R(h) ȳ + v."""
        return rigid_transform(self.aligned_pose(state, num_keypoints), state["v"], state["h"],
                               self.vertical_axis)

    def squared_errors(self, data: Data, state: State) -> Float[Array, "N T k"]:
        """|Y_{t,k} - Ŷ_{t,k}|², zero on masked frames."""
        errors = jnp.sum((data["Y"] - self.predicted(state, data["Y"].shape[-2])) ** 2, -1)
        return jnp.where(data["mask"][..., None] > 0, errors, 0.0)

    def variances(self, state: State) -> Float[Array, "N T k"]:
        return state["s"] * state["sigmasq"]

    # ---- GaussianEmissions -----------------------------------------------------------------

    def emission_terms(self, data, state):
        Y = data["Y"]
        num_recordings, num_frames, k, d = Y.shape
        aligned = self.egocentric(Y, state)
        G = self._embedding(k, Y.dtype)
        Cd = G @ state["Cd"].astype(Y.dtype)
        variances = jnp.repeat(self.variances(state), d, axis=-1)
        return (aligned.reshape(num_recordings, num_frames, k * d), Cd[:, :-1], Cd[:, -1],
                variances)

    def initial_latents(self, data, state):
        Y = data["Y"]
        aligned = self.egocentric(Y, state)
        G = self._embedding(Y.shape[-2], Y.dtype)
        embedded = aligned.reshape(*Y.shape[:2], -1) @ G
        return least_squares_latents(embedded, state["Cd"].astype(Y.dtype))

    # ---- GibbsBlock ------------------------------------------------------------------------

    def init(self, key, data, state):
        """Cd from the whitened PCA of the aligned, embedded keypoints of the unmasked frames
        whose keypoints are all confident (all unmasked frames if none is); sigmasq_init."""
        Y = data["Y"]
        k = Y.shape[-2]
        aligned = self.egocentric(Y, state)
        embedded = aligned.reshape(*Y.shape[:2], -1) @ self._embedding(k, Y.dtype)
        valid = data["mask"] > 0
        confident = valid & jnp.all(data["conf"] > self.conf_threshold, -1)

        def moments(features, weights):
            weights = weights.astype(features.dtype)
            return (jnp.sum(weights), jnp.einsum("nt,ntp->p", weights, features),
                    jnp.einsum("nt,ntp,ntq->pq", weights, features, features))

        total, first, second = sum_over_recordings(moments, embedded, confident)
        fallback = sum_over_recordings(moments, embedded, valid)
        use_all = total < 2
        total, first, second = (jnp.where(use_all, a, b) for a, b in
                                zip(fallback, (total, first, second), strict=True))
        components, variances, mean = pca_from_moments(total, first, second, self.latent_dim)
        C = components * jnp.sqrt(variances) if self.whiten else components
        return {"Cd": jnp.concatenate([C, mean[:, None]], axis=1),
                "sigmasq": jnp.full(k, self.sigmasq_init, Y.dtype)}

    def _sum_over_frames(self, fn, data: Data, state: State):
        """Σ over recordings of `fn(data, state)` for the recordings' own data and pose (Y,
        mask, x, v, h, s), chunk by chunk (`sum_over_recordings`): no (N, T, k, d)
        intermediate of all recordings at once."""
        def chunk_sum(Y, mask, x, v, h, s, parameters):
            return fn({"Y": Y, "mask": mask}, {**parameters, "x": x, "v": v, "h": h, "s": s})

        return sum_over_recordings(chunk_sum, data["Y"], data["mask"], state["x"],
                                   state["v"], state["h"], state["s"],
                                   shared={"Cd": state["Cd"], "sigmasq": state["sigmasq"]})

    def resample(self, key, data, state):
        def sums(data, state):
            errors = self.squared_errors(data, state)
            return jnp.sum(errors / state["s"], axis=(0, 1)), jnp.sum(data["mask"] > 0)

        weighted, frames = self._sum_over_frames(sums, data, state)
        degs = self.nu_sigma + data["Y"].shape[-1] * frames
        sigmasq = sample_scaled_inv_chi2(key, degs,
                                         (self.nu_sigma * self.sigmasq_0 + weighted) / degs)
        return {"Cd": state["Cd"], "sigmasq": sigmasq}

    def sample_prior(self, key, state):
        if self.num_keypoints is None:
            raise ValueError("simulating keypoints needs `num_keypoints` (pass it to "
                             "keypoint_slds) or a given `Cd`.")
        k, d, dim = self.num_keypoints, self.keypoint_dim, self.latent_dim
        Cd_key, sigma_key = jax.random.split(key)
        dtype = jnp.result_type(float)
        Cd = jax.random.normal(Cd_key, ((k - 1) * d, dim + 1), dtype)
        sigmasq = sample_scaled_inv_chi2(sigma_key, jnp.full(k, self.nu_sigma, dtype),
                                         jnp.full(k, self.sigmasq_0, dtype))
        return {"Cd": Cd, "sigmasq": sigmasq}

    def log_prob(self, data, state):
        """log p(Y | x, v, h, s, sigmasq) over unmasked frames + the prior of sigmasq (Cd is a
        fixed parameter and has no prior term)."""
        d = data["Y"].shape[-1]

        def likelihood(data, state):
            variances = self.variances(state)
            frames = (data["mask"] > 0)[..., None]
            return jnp.sum(-0.5 * (self.squared_errors(data, state) / variances
                                   + d * jnp.log(2 * jnp.pi * variances)) * frames)

        prior = scaled_inv_chi2_log_prob(state["sigmasq"], self.nu_sigma, self.sigmasq_0)
        return jnp.sum(prior) + self._sum_over_frames(likelihood, data, state)

    def sample_data(self, key, state):
        k = state["sigmasq"].shape[0]
        mean = self.predicted(state, k)
        noise = jax.random.normal(key, mean.shape, mean.dtype)
        return {"Y": mean + jnp.sqrt(self.variances(state))[..., None] * noise}


class _PoseBlock(GibbsBlock):
    """A pose variable scored through `observations` (a `KeypointObservations`)."""

    observations: KeypointObservations


class KeypointHeading(_PoseBlock):
    """Heading `h` (N, T): uniform prior per frame; exact conditional von Mises with natural
    parameters Σ_k (ȳ_k · c_k, ȳ_k × c_k) / (s σ²)_k, c_k = Y_k - v (horizontal components).

    `fixed=True` holds h at 0 (only the centroid is removed; keypoint-MoSeq's fix_heading).
    """

    fixed: bool = eqx.field(static=True, default=False)

    writes: ClassVar = ("h",)
    reads: ClassVar = ("Y", "mask", "x", "v", "s", "Cd", "sigmasq")
    init_reads: ClassVar = ("Y",)
    prior_reads: ClassVar = ("mask",)
    per_recording: ClassVar = ("h",)
    recording_wise: ClassVar = True

    def init(self, key, data, state):
        """The heading from the posterior to the anterior keypoints (0 if `fixed`)."""
        Y = data["Y"]
        if self.fixed:
            return {"h": jnp.zeros(Y.shape[:2], Y.dtype)}
        observations = self.observations
        _, _, h = align_egocentric(Y, observations.anterior, observations.posterior,
                                   observations.vertical_axis)
        return {"h": h}

    def resample(self, key, data, state):
        if self.fixed:
            return {"h": state["h"]}
        Y = data["Y"]
        pose = self.observations.aligned_pose(state, Y.shape[-2])
        precision = (data["mask"][..., None] > 0) / self.observations.variances(state)
        a, b = heading_natural_params(Y, state["v"], pose, precision,
                                      self.observations.vertical_axis)
        keys = recording_keys(key, data, Y.shape[0])
        h = jax.vmap(sample_von_mises)(keys, jnp.arctan2(b, a), jnp.hypot(a, b))
        return {"h": h}

    def sample_prior(self, key, state):
        shape = state["mask"].shape
        dtype = jnp.result_type(float)
        if self.fixed:
            return {"h": jnp.zeros(shape, dtype)}
        keys = recording_keys(key, state, shape[0])
        h = jax.vmap(lambda k: jax.random.uniform(k, shape[1:], dtype, -jnp.pi, jnp.pi))(keys)
        return {"h": h}

    def log_prob(self, data, state):
        if self.fixed:
            return jnp.zeros((), state["h"].dtype)
        return -jnp.log(2 * jnp.pi) * jnp.sum(recording_span(data["mask"]))


class KeypointCentroid(_PoseBlock):
    """Centroid `v` (N, T, d): a Gaussian random walk, v_0 ~ N(0, init_variance I),
    v_t ~ N(v_{t-1}, sigmasq_loc I). Conditional: given the residuals r_k = Y_k - R(h) ȳ_k,
    the precision-weighted mean over keypoints is a Gaussian observation of v_t, so v is
    drawn exactly by a scalar Kalman forward-filter, backward-sample per coordinate.
    """

    sigmasq_loc: float = 0.5
    init_variance: float = 1e4

    writes: ClassVar = ("v",)
    reads: ClassVar = ("Y", "mask", "x", "h", "s", "Cd", "sigmasq")
    init_reads: ClassVar = ("Y",)
    prior_reads: ClassVar = ("mask",)
    per_recording: ClassVar = ("v",)
    recording_wise: ClassVar = True

    def __check_init__(self):
        check_positive("sigmasq_loc", self.sigmasq_loc)
        check_positive("init_variance", self.init_variance)

    def init(self, key, data, state):
        """The mean keypoint of every frame."""
        return {"v": jnp.mean(data["Y"], axis=-2)}

    def resample(self, key, data, state):
        Y = data["Y"]
        pose = self.observations.aligned_pose(state, Y.shape[-2])
        residuals = Y - rigid_transform(pose, jnp.zeros_like(state["v"]), state["h"],
                                        self.observations.vertical_axis)
        precision = (data["mask"][..., None] > 0) / self.observations.variances(state)
        total = jnp.sum(precision, -1)
        mean = jnp.einsum("ntk,ntkd->ntd", precision, residuals) / jnp.where(
            total > 0, total, 1.0)[..., None]
        keys = recording_keys(key, data, Y.shape[0])
        v = jax.vmap(sample_random_walk, in_axes=(0, 0, 0, None, None))(
            keys, mean, total, self.sigmasq_loc, self.init_variance)
        return {"v": v}

    def sample_prior(self, key, state):
        num_recordings, num_frames = state["mask"].shape
        d = self.observations.keypoint_dim
        keys = recording_keys(key, state, num_recordings)
        dtype = jnp.result_type(float)

        def walk(key):
            first_key, step_key = jax.random.split(key)
            first = jnp.sqrt(self.init_variance) * jax.random.normal(first_key, (1, d), dtype)
            steps = jnp.sqrt(self.sigmasq_loc) * jax.random.normal(
                step_key, (num_frames - 1, d), dtype)
            return jnp.cumsum(jnp.concatenate([first, steps]), axis=0)

        return {"v": jax.vmap(walk)(keys)}

    def log_prob(self, data, state):
        return random_walk_log_prob(state["v"], self.sigmasq_loc, self.init_variance,
                                    recording_span(data["mask"]))


class KeypointNoiseScales(_PoseBlock):
    """Noise scales `s` (N, T, k): s_{t,k} ~ Scaled-Inv-χ²(nu_s, s₀_{t,k}) a priori, with the
    error model s₀ = (10^intercept · conf^slope)² from tracking confidence; conditional
    Scaled-Inv-χ²(nu_s + d, (nu_s s₀ + |Y_{t,k} - Ŷ_{t,k}|² / σ²_k) / (nu_s + d)) on
    unmasked frames (exactly d degrees of freedom per keypoint, not keypoint-MoSeq's 3).
    """

    nu_s: float = 5.0
    slope: float = -0.5
    intercept: float = 0.25

    writes: ClassVar = ("s",)
    reads: ClassVar = ("Y", "conf", "mask", "x", "v", "h", "Cd", "sigmasq")
    init_reads: ClassVar = ("Y", "conf", "mask", "x", "v", "h", "Cd", "sigmasq")
    prior_reads: ClassVar = ("mask", "sigmasq", "conf")
    per_recording: ClassVar = ("s",)
    recording_wise: ClassVar = True

    def __check_init__(self):
        check_positive("nu_s", self.nu_s)

    def prior_scale(self, data: Data, num_keypoints: int) -> Float[Array, "N T k"]:
        """s₀ from the error model; without `conf` (as in simulation) every confidence is 1,
        as `KeypointObservations.prepare_data` fills it."""
        conf = data.get("conf")
        if conf is None:
            conf = jnp.ones((*data["mask"].shape, num_keypoints), jnp.result_type(float))
        return noise_prior_scale(conf, self.slope, self.intercept)

    def init(self, key, data, state):
        return self.resample(key, data, state)

    def resample(self, key, data, state):
        Y = data["Y"]
        errors = self.observations.squared_errors(data, state) / state["sigmasq"]
        degs = self.nu_s + Y.shape[-1] * (data["mask"][..., None] > 0)
        scale = (self.nu_s * self.prior_scale(data, Y.shape[-2]) + errors) / degs
        return {"s": self._draw(key, data, degs, scale)}

    def sample_prior(self, key, state):
        scale = self.prior_scale(state, state["sigmasq"].shape[0])
        return {"s": self._draw(key, state, jnp.full(scale.shape, self.nu_s, scale.dtype),
                                scale)}

    def _draw(self, key, data, degs, scale):
        keys = recording_keys(key, data, scale.shape[0])
        return jax.vmap(sample_scaled_inv_chi2)(keys, degs, scale)

    def log_prob(self, data, state):
        s = state["s"]
        density = scaled_inv_chi2_log_prob(s, self.nu_s, self.prior_scale(data, s.shape[-1]))
        return jnp.sum(jnp.where(recording_span(data["mask"])[..., None], density, 0.0))
