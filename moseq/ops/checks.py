"""Argument checks shared by the kernels, and the checks of keypoint data (`DataWarning`,
`check_pca_frames`) that the keypoint blocks and `moseq.io` share.

Shapes are static, so shape checks run at trace time. Values are checked only when they are
concrete (Python numbers or non-traced arrays); under `jax.jit` a traced hyperparameter is
trusted, because checking it would need a device round trip.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np


def is_concrete(value) -> bool:
    """True when `value` holds no tracer, so its numbers can be read on the host."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(value))


def check_ndim(name: str, array, ndim: int, shape_doc: str) -> None:
    """Raise if `array` does not have `ndim` axes; `shape_doc` names the expected shape."""
    if np.ndim(array) != ndim:
        raise ValueError(
            f"`{name}` must have shape {shape_doc} ({ndim} axes); got shape {np.shape(array)}."
        )


def check_square(name: str, array) -> None:
    """Raise unless the last two axes of `array` are equal."""
    shape = np.shape(array)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"`{name}` must be square in its last two axes; got shape {shape}.")


def check_same(name_a: str, size_a: int, name_b: str, size_b: int, what: str) -> None:
    """Raise if two sizes that must agree do not."""
    if size_a != size_b:
        raise ValueError(
            f"{what}: `{name_a}` has {size_a} but `{name_b}` has {size_b}; they must match."
        )


def check_positive(name: str, value, allow_zero: bool = False) -> None:
    """Raise if a concrete hyperparameter is negative (zero too unless `allow_zero`) or inf."""
    if not is_concrete(value):
        return
    values = np.asarray(value, dtype=float)
    bad = ~np.isfinite(values) | (values < 0 if allow_zero else values <= 0)
    if np.any(bad):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be finite and {bound}; got {value!r}.")


class DataWarning(UserWarning):
    """Data moseq can fit but probably should not fit as they are: a keypoint mostly missing
    or at or below `conf_threshold`, a keypoint filled with a constant, a PCA on few frames.
    The message names the keypoint, the fraction and the remedy. Exported as
    `moseq.io.DataWarning`; silence it with
    `warnings.filterwarnings("ignore", category=moseq.io.DataWarning)`."""


DROP_KEYPOINTS = ("drop it with `keypoints` (config `data.keypoints`, `moseq init-project "
                  "--keypoints`, `moseq.io.load_keypoints(keypoints=[...])`)")
"""The remedy for a keypoint that cannot be fitted, as the error and warning messages give it."""

MOSTLY_UNCONFIDENT = 0.5
"""A keypoint at or below `conf_threshold` in more than this fraction of the unmasked frames
is warned about (keypoint-MoSeq warns about keypoints missing in more than half the frames)."""

FEW_PCA_FRACTION, PCA_FRAMES_PER_DIMENSION = 0.1, 10
"""The PCA behind the keypoint emission matrix is warned about when `conf_threshold` leaves it
fewer than this fraction of the unmasked frames, or fewer than this many frames per pose
dimension of data that hold that many."""


def keypoint_label(index: int, keypoint_names=None) -> str:
    """`'nose'`, or `keypoint 3` when the keypoints have no names."""
    return repr(keypoint_names[index]) if keypoint_names is not None else f"keypoint {index}"


def check_pca_frames(conf, mask, conf_threshold: float, latent_dim: int, pose_dim: int,
                     keypoint_names=None) -> None:
    """Check the frames a keypoint PCA may use: those whose keypoints are all above
    `conf_threshold` (a missing keypoint has confidence 0).

    Raises if fewer than `latent_dim + 1` frames are usable (the PCA cannot give `latent_dim`
    components). Warns (`DataWarning`) about keypoints at or below the threshold in more than
    `MOSTLY_UNCONFIDENT` of the frames, and when the usable frames are fewer than
    `FEW_PCA_FRACTION` of the frames, or than `PCA_FRAMES_PER_DIMENSION * pose_dim` when there
    are that many frames.

    Args:
        conf: `(N, T, k)` confidences; mask: `(N, T)`, frames where it is 0 are ignored.
        pose_dim: the number of PCA features, `(k - 1) d` for `d`-D keypoints.
        keypoint_names: the `k` names, for the messages (default: indices).
    """
    observed = np.asarray(mask) > 0
    conf = np.asarray(conf)[observed]  # (frames, k)
    threshold = float(np.asarray(conf_threshold))
    below = conf <= threshold
    below_fraction = below.mean(axis=0)
    usable = int(np.sum(~below.any(axis=1)))
    never_observed = ~np.any(conf > 0, axis=0)

    def worst(limit=None):
        """The keypoints most often at or below the threshold, with their fractions."""
        order = [i for i in np.argsort(-below_fraction, kind="stable") if below_fraction[i] > 0]
        order = order if limit is None else [i for i in order if below_fraction[i] > limit]
        return ", ".join(
            f"{keypoint_label(i, keypoint_names)} {below_fraction[i]:.0%}"
            + (" (never observed)" if never_observed[i] else "") for i in order[:5])

    condition = f"every keypoint above `conf_threshold` = {threshold:g}"
    remedy = (f"for a keypoint that is unreliable, {DROP_KEYPOINTS}; for one whose "
              "confidences are merely low, lower `conf_threshold` (config "
              "`model.conf_threshold`)")
    if usable < latent_dim + 1:
        raise ValueError(
            f"Only {usable} of the {len(conf)} unmasked frames have {condition}; the PCA that "
            f"initialises the model needs at least latent_dim + 1 = {latent_dim + 1} such "
            f"frames. Keypoints most often at or below it: {worst()}. {remedy[0].upper()}"
            f"{remedy[1:]}.")
    mostly_below = below_fraction > MOSTLY_UNCONFIDENT
    if mostly_below.any():
        warnings.warn(
            f"Keypoints missing or at or below `conf_threshold` = {threshold:g} in more than "
            f"{MOSTLY_UNCONFIDENT:.0%} of the unmasked frames: {worst(MOSTLY_UNCONFIDENT)}. "
            "There they are interpolated (missing) or given a large noise (low confidence); "
            f"{remedy}.",
            DataWarning, stacklevel=2)
    per_dimension = PCA_FRAMES_PER_DIMENSION * pose_dim
    if usable < FEW_PCA_FRACTION * len(conf) or usable < per_dimension <= len(conf):
        warnings.warn(
            f"The PCA that initialises the model uses only the {usable} of {len(conf)} "
            f"unmasked frames ({usable / len(conf):.1%}) with {condition}, fewer than "
            f"{FEW_PCA_FRACTION:.0%} of the frames or {PCA_FRAMES_PER_DIMENSION} per pose "
            f"dimension ({per_dimension}). Keypoints most often at or below it: {worst()}; "
            f"{remedy}.", DataWarning, stacklevel=2)
