"""Bad input is refused, or warned about, by name and before anything compiles (issue 13).

Each test checks that the message names the argument, keypoint, file or config key, the value
and the fix. The models' checks run where `init` would compile; the `no_compilation` fixture
makes any compiled block fail, so an error (or a warning) seen there came first. The data are
tiny: a few hundred frames of random keypoints, the shipped DeepLabCut clip, and CSVs written
into `tmp_path`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from moseq import cli, pipeline
from moseq import io as mio
from moseq.core import scheduler
from moseq.io import DataWarning
from moseq.models import apply_model, arhmm, fit_staged, keypoint_slds, slds
from moseq.pipeline import ConfigError, FittedModel
from tests.test_io import DLC_CSV, NWB, dlc_columns, write_dlc_csv

NAMES = ("nose", "ear", "neck", "tail")
DLC_NAMES = ["snout", "leftear", "rightear", "tailbase"]


class Compiled(Exception):
    """Raised by `no_compilation` instead of running a compiled block."""


@pytest.fixture
def no_compilation(monkeypatch):
    def refuse(*args, **kwargs):
        raise Compiled

    for name in ("_compiled_init_block", "_compiled_resample_block", "_compiled_log_joint"):
        monkeypatch.setattr(scheduler, name, refuse)


def keypoint_model(**kwargs):
    """A tiny keypoint SLDS: 4 named keypoints, nose anterior, tail posterior."""
    return keypoint_slds((0,), (3,), latent_dim=2, num_states=3, nlags=1, keypoint_names=NAMES,
                         **kwargs)


def keypoint_data(num_frames=200, dim=2, seed=0):
    """2 recordings of random 4-keypoint poses, every confidence 0.9."""
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(2, num_frames, 4, dim)) + 5.0 * np.arange(4)[:, None]
    return {"Y": Y, "conf": np.full((2, num_frames, 4), 0.9), "mask": np.ones((2, num_frames))}


def low_confidence(data, keypoint, fraction):
    """`data` with `keypoint` at confidence 0.2 in the first `fraction` of each recording."""
    conf = data["conf"].copy()
    conf[:, : int(round(fraction * conf.shape[1])), keypoint] = 0.2
    return {**data, "conf": conf}


def data_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DataWarning)]


# ---- 1. missing and low-confidence keypoints, the PCA's frames -----------------------------


def test_a_keypoint_never_observed_stops_init_before_it_compiles(no_compilation):
    data = keypoint_data()
    data["Y"][:, :, 3] = np.nan  # the tail is never tracked (confidence 0 after preparation)
    with pytest.raises(ValueError, match=r"Only 0 of the 400 unmasked frames have every keypoint "
                                         r"above `conf_threshold` = 0.5; the PCA .* needs at least"
                                         r" latent_dim \+ 1 = 3.*'tail' 100% \(never observed\)"
                                         r".*drop it with `keypoints`.*lower `conf_threshold`"):
        keypoint_model().init(0, data)


def test_no_frame_above_conf_threshold_is_an_error():
    """The real-data finding: every frame has some keypoint below the threshold, so the PCA
    would have fallen back to every frame, interpolated values included."""
    data = keypoint_data()
    conf = data["conf"]
    conf[:, ::2, 1] = conf[:, 1::2, 2] = 0.3  # ear low on even frames, neck on odd ones
    with pytest.raises(ValueError, match=r"Only 0 of the 400 .*'ear' 50%, 'neck' 50%\. For a "
                                         r"keypoint that is unreliable, drop it.*config "
                                         r"`model.conf_threshold`"):
        keypoint_model().check_data(data, init=True)
    # a lower threshold is the remedy
    keypoint_model(conf_threshold=0.25).check_data(data, init=True)


def test_a_mostly_unconfident_keypoint_warns_with_its_fraction(no_compilation):
    data = low_confidence(keypoint_data(), keypoint=3, fraction=0.7)
    with pytest.warns(DataWarning) as record, pytest.raises(Compiled):
        keypoint_model().init(0, data)  # the warning comes before anything compiles
    assert data_warnings(record) == [
        "Keypoints missing or at or below `conf_threshold` = 0.5 in more than 50% of the "
        "unmasked frames: 'tail' 70%. There they are interpolated (missing) or given a large "
        "noise (low confidence); for a keypoint that is unreliable, drop it with `keypoints` "
        "(config `data.keypoints`, `moseq init-project --keypoints`, "
        "`moseq.io.load_keypoints(keypoints=[...])`); for one whose confidences are merely low, "
        "lower `conf_threshold` (config `model.conf_threshold`)."]


def test_a_pca_on_few_frames_warns():
    data = low_confidence(keypoint_data(), keypoint=1, fraction=0.95)  # 10 frames each left
    with pytest.warns(DataWarning) as record:
        keypoint_model().check_data(data, init=True)
    messages = data_warnings(record)
    assert len(messages) == 2 and "'ear' 95%" in messages[0]
    assert messages[1].startswith(
        "The PCA that initialises the model uses only the 20 of 400 unmasked frames (5.0%) with "
        "every keypoint above `conf_threshold` = 0.5, fewer than 10% of the frames or 10 per "
        "pose dimension (60). Keypoints most often at or below it: 'ear' 95%;")
    data = low_confidence(keypoint_data(), keypoint=1, fraction=0.875)  # 12.5%, 50 < 6 * 10
    with pytest.warns(DataWarning) as record:
        keypoint_model().check_data(data, init=True)
    assert "uses only the 50 of 400 unmasked frames (12.5%)" in data_warnings(record)[1]


def test_fitted_parameters_need_no_pca():
    """Applying a model (its `Cd` given) checks no PCA frames."""
    data = low_confidence(keypoint_data(), keypoint=3, fraction=1.0)
    given = {"Cd": np.zeros((6, 3)), "sigmasq": np.ones(4)}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        keypoint_model().check_data(data, init=True, given=given)


def test_clean_data_raise_no_moseq_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        keypoint_model().check_data(keypoint_data(), init=True)
        keypoint_model().check_data(keypoint_data(num_frames=20), init=True)  # short, all used
        batch = mio.to_batch(mio.load_keypoints(DLC_CSV), anterior="snout", posterior="tailbase")
        keypoint_slds(batch.anterior_idxs, batch.posterior_idxs, latent_dim=3,
                      keypoint_names=batch.keypoint_names).check_data(batch.data, init=True)
        pipeline.init_project(tmp_path / "p", [DLC_CSV], "snout", "tailbase",
                              model={"latent_dim": 3})


def write_3d_clip(path, names, never_tracked=(), num_frames=40, seed=0):
    """A 3-D DeepLabCut CSV (x, y, z per keypoint); `never_tracked` keypoints all empty."""
    values = np.random.default_rng(seed).uniform(0, 100, (num_frames, 3 * len(names)))
    for name in never_tracked:
        index = names.index(name)
        values[:, 3 * index : 3 * index + 3] = np.nan
    write_dlc_csv(path, dlc_columns(names, ("x", "y", "z")), values)
    return path


def test_init_project_refuses_keypoints_never_observed(tmp_path):
    clip = write_3d_clip(tmp_path / "clip3d.csv", NAMES, never_tracked=("ear", "neck"))
    with pytest.raises(ValueError, match=r"Keypoint 'ear' is missing in every frame of every "
                                         r"recording.*drop it with `keypoints` \(config "
                                         r"`data.keypoints`, `moseq init-project --keypoints`"):
        pipeline.init_project(tmp_path / "p", [clip], "nose", "tail")
    assert not (tmp_path / "p").exists()
    config = pipeline.init_project(tmp_path / "p", [clip], "nose", "tail",
                                   data={"keypoints": ["nose", "tail"]}, model={"latent_dim": 2})
    assert config.data.keypoints == ["nose", "tail"]


# ---- 2. keypoint names are checked when the project is made ---------------------------------


def test_init_project_checks_every_keypoint_name_against_the_files(tmp_path):
    with pytest.raises(ConfigError, match=r"`data.posterior` \(--posterior\) names \['Tail'\], "
                                          r"which are not keypoints of the data \(.*openfield_dlc"
                                          r"_inference_example.csv, ...\): they are \['snout', "
                                          r"'leftear', 'rightear', 'tailbase'\]"):
        pipeline.init_project(tmp_path / "p", [DLC_CSV], "snout", "Tail")
    with pytest.raises(ConfigError, match=r"`data.keypoints` names \['tail'\], which recording "
                                          r"'openfield_dlc_inference_example' .* lacks; its "
                                          r"keypoints are \['snout'.*init-project --keypoints"):
        pipeline.init_project(tmp_path / "p", [DLC_CSV], "snout", "tail",
                              data={"keypoints": ["snout", "tail"]})
    with pytest.raises(ConfigError, match=r"`data.posterior` names \['tailbase'\], which "
                                          r"`data.keypoints` \['snout', 'leftear'\] leaves out"):
        pipeline.init_project(tmp_path / "p", [DLC_CSV], "snout", "tailbase",
                              data={"keypoints": ["snout", "leftear"]})
    with pytest.raises(FileNotFoundError, match="missing.csv, which does not exist"):
        pipeline.init_project(tmp_path / "p", [tmp_path / "missing.csv"], "snout", "tailbase")
    assert not (tmp_path / "p").exists()


def test_init_project_warns_about_model_options_that_do_not_fit(tmp_path):
    with pytest.warns(DataWarning, match=r"The data do not fit this config yet: `latent_dim` = 10 "
                                         r"exceeds .* = 6 .*Edit .*config.toml before `moseq fit`"):
        pipeline.init_project(tmp_path / "p", [DLC_CSV], "snout", "tailbase")


def test_cli_init_project_names_the_files_keypoints(tmp_path, capsys):
    project = str(tmp_path / "p")
    assert cli.main(["init-project", project, "--data", str(DLC_CSV), "--anterior", "snout",
                     "--posterior", "Tail"]) == 1
    err = capsys.readouterr().err
    assert "`data.posterior` (--posterior) names ['Tail']" in err and "'tailbase'" in err
    assert cli.main(["init-project", project, "--data", str(DLC_CSV), "--anterior", "snout",
                     "--posterior", "tailbase", "--keypoints", "snout", "leftear", "tailbase",
                     "--set", "model.latent_dim=3"]) == 0
    assert pipeline.Config.load(project).data.keypoints == ["snout", "leftear", "tailbase"]
    # a model option that does not fit yet: the project is made, with a warning
    assert cli.main(["init-project", project, "--data", str(DLC_CSV), "--anterior", "snout",
                     "--posterior", "tailbase", "--overwrite"]) == 0
    assert capsys.readouterr().err.startswith(
        "moseq init-project: warning: The data do not fit this config yet: `latent_dim` = 10")


# ---- 3, 4. applying a model to data of other dimensions or keypoints ------------------------


def fitted_project(folder, dim=2, latent_dim=3):
    """A project on the DLC clip with a model.npz whose emission matrix is `dim`-D (the other
    parameters are not read before the checks under test)."""
    pipeline.init_project(folder, [DLC_CSV], "snout", "tailbase",
                          model={"latent_dim": latent_dim})
    config = pipeline.Config.load(folder)
    pipeline.save_model(folder / "model.npz", FittedModel(
        params={"Cd": np.zeros((3 * dim, latent_dim + 1))}, config=config,
        keypoint_names=tuple(DLC_NAMES), fps=None,
        syllable_order=np.arange(config.model.num_states)))
    return folder


def test_apply_names_a_mismatch_of_dimensions(tmp_path, no_compilation):
    project = fitted_project(tmp_path / "p", dim=2)
    clip = write_3d_clip(tmp_path / "clip3d.csv", DLC_NAMES)
    with pytest.raises(ValueError, match=r"The model was fitted on 2-D keypoints, but the "
                                         r"recordings of .*clip3d.csv.* are 3-D: apply a model "
                                         r"fitted on 3-D data"):
        pipeline.apply(project, [clip], tmp_path / "out", progress=False)


def test_apply_model_names_given_parameters_of_other_shapes(no_compilation):
    """The Python API's form of the same mistake: 2-D parameters, a 3-D model and data."""
    params = {"betas": np.ones(3) / 3, "pi": np.full((3, 3), 1 / 3), "Ab": np.zeros((3, 2, 3)),
              "Q": np.tile(np.eye(2), (3, 1, 1)), "Cd": np.zeros((6, 3)), "sigmasq": np.ones(4)}
    with pytest.raises(ValueError, match=r"`given\['Cd'\]` has shape \(6, 3\), this model and "
                                         r"data need \(9, 3\)\. .*2-D vs 3-D data"):
        apply_model(keypoint_model(keypoint_dim=3), 0, keypoint_data(dim=3), params, 1)


def test_apply_without_keypoints_says_what_the_model_was_fitted_on(tmp_path, no_compilation):
    project = fitted_project(tmp_path / "p")
    with pytest.raises(ValueError) as error:
        pipeline.apply(project, [NWB], tmp_path / "out", progress=False)
    message = str(error.value)
    assert message.startswith("The model was fitted on the keypoints ['snout', 'leftear', "
                              "'rightear', 'tailbase']; recording 'sample_nwb_' (")
    assert "lacks ['snout', 'leftear', 'rightear', 'tailbase'] (its keypoints: ['ind1_snout'," in (
        message)
    assert "pass `--keypoints`" in message and "`keypoints` names" not in message


# ---- 6. heading keypoints, segments, masks and empty data ----------------------------------


CONFIG = {"data": {"paths": ["x.csv"], "anterior": ["nose"], "posterior": ["tail"]}}


def test_anterior_equal_to_posterior_is_refused_everywhere(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"`data.anterior` \(--anterior\) and `data.posterior` "
                                          r"\(--posterior\) both name \['nose'\]: the heading .*"
                                          r"undefined"):
        pipeline.Config.from_dict({"data": {**CONFIG["data"], "posterior": ["nose"]}})
    with pytest.raises(ValueError, match=r"`anterior` and `posterior` are the same keypoints "
                                         r"\[0, 2\].*heading.*undefined"):
        keypoint_slds((0, 2), (2, 0))
    assert cli.main(["init-project", str(tmp_path / "p"), "--data", str(DLC_CSV), "--anterior",
                     "snout", "--posterior", "snout"]) == 1
    assert "both name ['snout']" in capsys.readouterr().err


def test_segments_no_longer_than_their_overlap_are_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"`data.seg_length` \(10\) must exceed "
                                          r"`data.seg_overlap` \(30\).*fitted about 4 times.*"
                                          r"Raise `data.seg_length`"):
        pipeline.Config.from_dict({"data": {**CONFIG["data"], "seg_length": 10}})
    assert cli.main(["init-project", str(tmp_path / "p"), "--data", str(DLC_CSV), "--anterior",
                     "snout", "--posterior", "tailbase", "--set", "data.seg_length=30"]) == 1
    assert "`data.seg_length` (30) must exceed `data.seg_overlap` (30)" in (
        capsys.readouterr().err)


def ar_data(num_recordings=2, num_frames=20, mask=None):
    x = np.random.default_rng(0).normal(size=(num_recordings, num_frames, 2))
    return {"x": x, "mask": np.ones((num_recordings, num_frames)) if mask is None else mask}


@pytest.mark.parametrize(("data", "message"), [
    (ar_data(mask=np.zeros((2, 20))), r"`data\['mask'\]` is 0 everywhere: no frame is observed"),
    (ar_data(mask=np.ones((2, 21))), r"`data\['x'\]` has 20 frames on its second axis, but "
                                     r"`data\['mask'\]` has 21"),
    (ar_data(mask=np.ones(20)), r"`data\['mask'\]` must be an \(N, T\) array .*got shape \(20,\)"),
    (ar_data(num_recordings=0), r"shape \(0, 20\): no recordings \(N = 0\)"),
    (ar_data(num_frames=0), r"shape \(2, 0\): no frames \(T = 0\)"),
    (ar_data(num_frames=2), r"Recordings of 2 frames are too short for nlags = 2"),
    (ar_data(mask=np.full((2, 20), np.nan)), r"`data\['mask'\]` must hold finite weights >= 0"),
], ids=["all-zero mask", "mask of other frames", "1-D mask", "N = 0", "T = 0", "T <= nlags",
        "NaN mask"])
def test_bad_masks_and_empty_data_are_refused_before_init_compiles(data, message,
                                                                   no_compilation):
    model = arhmm(2, num_states=3, nlags=2)
    with pytest.raises(ValueError, match=message):
        model.init(0, data)
    with pytest.raises(ValueError, match=message):
        fit_staged(model, 0, data, ar_sweeps=1, full_sweeps=1)


def test_an_all_zero_mask_stops_the_keypoint_model(no_compilation):
    data = {**keypoint_data(), "mask": np.zeros((2, 200))}
    with pytest.raises(ValueError, match="is 0 everywhere"):
        keypoint_model().init(0, data)


def test_slds_refuses_an_emission_matrix_without_columns():
    with pytest.raises(ValueError, match=r"`Cd` must have shape \(obs, D \+ 1\).*got shape \(4,\)"):
        slds(np.ones(4))
