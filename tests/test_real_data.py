"""Short keypoint-SLDS fits of the real clips in tests/data run end to end."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import moseq.io
from moseq.models import keypoint_slds

DATA = Path(__file__).parent / "data"
CLIPS = [
    ("jabs_openfield_mouse/sample_pose_est_v2.h5", ["NOSE"], ["BASE_TAIL"]),
    ("dlc_openfield_mouse/openfield_dlc_inference_example.csv", ["snout"], ["tailbase"]),
    ("sleap_fly_courtship/predictions.analysis.h5", ["head"], ["abdomen"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "anterior", "posterior"), CLIPS,
                         ids=[clip[0].split("/")[0] for clip in CLIPS])
def test_keypoint_slds_fits_real_clip(path, anterior, posterior):
    batch = moseq.io.to_batch(moseq.io.load_keypoints(DATA / path), anterior=anterior,
                              posterior=posterior)
    model = keypoint_slds(batch.anterior_idxs, batch.posterior_idxs, latent_dim=4,
                          num_states=20, kappa=1e4)
    state = model.init(0, batch.data)
    state, trace = model.run(1, batch.data, state, 6, progress=False)
    for name, value in state.items():
        assert bool(jnp.all(jnp.isfinite(value))), name
    log_joint = trace["log_joint"]
    assert np.all(np.isfinite(log_joint))
    assert log_joint[-1] > log_joint[0]
