"""moseq.io: real clips read to the right shapes, names and (x, y) order; synthetic files in
every format round-trip; batching and its inverse; every error names what is wrong."""

import csv
import pickle
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from moseq import io as mio

DATA = Path(__file__).parent / "data"
DLC_CSV = DATA / "dlc_openfield_mouse" / "openfield_dlc_inference_example.csv"
NWB = DATA / "dlc_openfield_mouse" / "sample_nwb_.nwb"
JABS = DATA / "jabs_openfield_mouse" / "sample_pose_est_v2.h5"
SLEAP_H5 = DATA / "sleap_fly_courtship" / "predictions.analysis.h5"
SLEAP_SLP = DATA / "sleap_fly_courtship" / "predictions.slp"
FLY_NODES = ["head", "thorax", "abdomen", "wingL", "wingR", "forelegL4", "forelegR4",
             "midlegL4", "midlegR4", "hindlegL4", "hindlegR4", "eyeL", "eyeR"]
JABS_NODES = ["NOSE", "LEFT_EAR", "RIGHT_EAR", "BASE_NECK", "LEFT_FRONT_PAW", "RIGHT_FRONT_PAW",
              "CENTER_SPINE", "LEFT_REAR_PAW", "RIGHT_REAR_PAW", "BASE_TAIL", "MID_TAIL",
              "TIP_TAIL"]


def only(recordings):
    (recording,) = recordings.values()
    return recording


# ---- writers of synthetic files, following each tool's layout --------------------------------


def write_dlc_csv(path, columns, values):
    """DeepLabCut CSV: one header row per column level, then `index, values...` rows."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        level_names = ["scorer", "bodyparts", "coords"]
        if len(columns[0]) == 4:
            level_names.insert(1, "individuals")
        for level, name in enumerate(level_names):
            writer.writerow([name] + [column[level] for column in columns])
        for frame, row in enumerate(values):
            writer.writerow([frame] + ["" if np.isnan(v) else repr(float(v)) for v in row])


def write_dlc_h5(path, columns, values, dtype="<f8"):
    """The layout pandas' `to_hdf(format="table")` gives a DeepLabCut table: a compound
    dataset `df_with_missing/table` (`index`, `values_block_0` of `dtype`) whose column labels
    are a protocol-0 pickle in the attribute `values_block_0_kind`."""
    fields = [("index", "<i8"), ("values_block_0", dtype, (len(columns),))]
    rows = np.zeros(len(values), dtype=fields)
    rows["index"] = np.arange(len(values))
    rows["values_block_0"] = values
    with h5py.File(path, "w") as file:
        table = file.create_dataset("df_with_missing/table", data=rows)
        table.attrs["values_block_0_kind"] = np.bytes_(pickle.dumps(list(columns), protocol=0))
        file["df_with_missing"].attrs["pandas_type"] = np.bytes_(b"frame_table")


def dlc_columns(bodyparts, coords, individuals=None, scorer="DLC_resnet50_test"):
    if individuals is None:
        return [(scorer, part, c) for part in bodyparts for c in coords]
    return [(scorer, ind, part, c) for ind in individuals for part in bodyparts for c in coords]


def write_sleap_analysis(path, tracks, scores=None, node_names=(), track_names=(), matlab=True):
    """SLEAP analysis HDF5; `tracks (T, n_tracks, K, 2)`, `scores (T, n_tracks, K)`, stored
    transposed (MATLAB order) as SLEAP does by default."""
    stored = tracks.transpose(1, 3, 2, 0) if matlab else tracks.transpose(0, 2, 3, 1)
    with h5py.File(path, "w") as file:
        file["tracks"] = stored
        file["node_names"] = np.array([n.encode() for n in node_names], dtype="S")
        file["track_names"] = np.array([n.encode() for n in track_names], dtype="S")
        if scores is not None:
            file["point_scores"] = scores.transpose((1, 2, 0) if matlab else (0, 2, 1))


def write_jabs(path, points_xy, confidence, **datasets):
    """JABS pose file: points stored as uint16 (y, x), 0 confidence where not predicted."""
    with h5py.File(path, "w") as file:
        file["poseest/points"] = points_xy[..., ::-1].astype(np.uint16)
        file["poseest/confidence"] = confidence.astype(np.float32)
        for name, value in datasets.items():
            file[f"poseest/{name}"] = value


def write_nwb(path, animals, rate=None):
    """ndx-pose layout: `processing/behavior/<PoseEstimation>/<series>/{data, confidence}`.

    `animals`: `{container name: (node names, data (T, K, D), confidence (T, K) or None)}`."""
    with h5py.File(path, "w") as file:
        file.attrs["nwb_version"] = "2.5.0"
        behavior = file.create_group("processing/behavior")
        for container, (nodes, data, confidence) in animals.items():
            group = behavior.create_group(container)
            group.attrs["neurodata_type"] = "PoseEstimation"
            group["nodes"] = np.array([n.encode() for n in nodes], dtype="S")
            for k, node in enumerate(nodes):
                series = group.create_group(node)
                series.attrs["neurodata_type"] = "PoseEstimationSeries"
                series["data"] = data[:, k] / 2.0
                series["data"].attrs["conversion"] = 2.0
                if confidence is not None:
                    series["confidence"] = confidence[:, k]
                if rate is None:
                    series["timestamps"] = np.arange(len(data)) / 25.0
                else:
                    series["starting_time"] = 0.0
                    series["starting_time"].attrs["rate"] = rate


# ---- real clips ------------------------------------------------------------------------------


def test_dlc_csv_real_clip():
    recording = only(mio.load_keypoints(DLC_CSV))
    raw = np.genfromtxt(DLC_CSV, delimiter=",", skip_header=3)[:, 1:].reshape(-1, 4, 3)
    assert recording.name == "openfield_dlc_inference_example"
    assert recording.keypoint_names == ("snout", "leftear", "rightear", "tailbase")
    assert recording.Y.shape == (2330, 4, 2) and recording.confidence.shape == (2330, 4)
    np.testing.assert_array_equal(recording.Y, raw[..., :2])
    np.testing.assert_array_equal(recording.confidence, raw[..., 2])
    assert recording.mask.all() and recording.fps is None
    assert recording.Y[0, 0].tolist() == pytest.approx([76.67398834228516, 88.24728393554688])


def test_nwb_real_clip():
    recording = only(mio.load_keypoints(NWB))
    assert recording.name == "sample_nwb_"
    assert recording.keypoint_names == ("ind1_snout", "ind1_leftear", "ind1_rightear",
                                        "ind1_tailbase")  # the `nodes` order, not alphabetical
    assert recording.Y.shape == (2330, 4, 2)
    with h5py.File(NWB) as file:
        series = file["processing/behavior/PoseEstimation/ind1_rightear"]
        np.testing.assert_array_equal(recording.Y[:, 2], series["data"][()])
        np.testing.assert_array_equal(recording.confidence[:, 2], series["confidence"][()])
    assert recording.fps == 1.0  # its timestamps are frame indices


def test_jabs_real_clip_flips_y_x():
    recording = only(mio.load_keypoints(JABS))
    with h5py.File(JABS) as file:
        stored = file["poseest/points"][()]  # (T, 12, 2) in (y, x)
        confidence = file["poseest/confidence"][()]
    assert recording.name == "sample_pose_est_v2"
    assert recording.keypoint_names == tuple(JABS_NODES)
    assert recording.Y.shape == (1800, 12, 2) and recording.fps == 30.0
    np.testing.assert_array_equal(recording.Y[..., 0], stored[..., 1])  # x
    np.testing.assert_array_equal(recording.Y[..., 1], stored[..., 0])  # y
    np.testing.assert_allclose(recording.confidence, np.clip(confidence, 0, 1))  # peaks reach 1.05


def test_sleap_analysis_real_clip():
    recordings = mio.load_keypoints(SLEAP_H5)
    assert list(recordings) == ["predictions.analysis_track_0", "predictions.analysis_track_1"]
    with h5py.File(SLEAP_H5) as file:
        stored = file["tracks"][()]  # (n_tracks, 2, K, T)
    for track, recording in enumerate(recordings.values()):
        assert recording.keypoint_names == tuple(FLY_NODES)
        assert recording.Y.shape == (3000, 13, 2)
        np.testing.assert_array_equal(recording.Y[..., 0], stored[track, 0].T)  # x
        np.testing.assert_array_equal(recording.Y[..., 1], stored[track, 1].T)  # y
        missing = np.isnan(stored[track, 0].T)
        assert 0 < missing.mean() < 0.05
        np.testing.assert_array_equal(recording.confidence, np.where(missing, 0.0, 1.0))


def test_sleap_slp_matches_analysis_file():
    from_slp = mio.load_keypoints(SLEAP_SLP)
    from_h5 = mio.load_keypoints(SLEAP_H5)
    assert list(from_slp) == ["predictions_track_0", "predictions_track_1"]
    for slp, h5 in zip(from_slp.values(), from_h5.values(), strict=True):
        assert slp.keypoint_names == tuple(FLY_NODES)
        np.testing.assert_allclose(slp.Y, h5.Y, rtol=1e-6)
        assert ((slp.confidence > 0) & (slp.confidence <= 1)).mean() > 0.95


def test_individual_selects_tracks():
    recording = only(mio.load_keypoints(SLEAP_H5, individual="track_1"))
    assert recording.name == "predictions.analysis_track_1"


@pytest.mark.parametrize("stem", ["single_animal", "multi_animal"])
def test_dlc_h5_written_by_pandas_matches_its_csv(stem):
    folder = DATA / "dlc_pandas_h5"
    from_h5 = mio.load_keypoints(folder / f"{stem}.h5")
    from_csv = mio.load_keypoints(folder / f"{stem}.csv")
    assert list(from_h5) == list(from_csv)
    for h5, table in zip(from_h5.values(), from_csv.values(), strict=True):
        assert h5.keypoint_names == table.keypoint_names == ("snout", "tailbase")
        np.testing.assert_array_equal(h5.Y, table.Y)
        np.testing.assert_array_equal(h5.confidence, table.confidence)
        assert np.isnan(h5.Y).sum() == (2 if h5.name in ("single_animal", "multi_animal_mouse2")
                                        else 0)


def test_dlc_multi_animal_unique_bodyparts_only_on_request():
    path = DATA / "dlc_pandas_h5" / "multi_animal.h5"
    assert list(mio.load_keypoints(path)) == ["multi_animal_mouse1", "multi_animal_mouse2"]
    port = only(mio.load_keypoints(path, individual="single"))
    assert port.name == "multi_animal_single" and port.keypoint_names == ("port",)


# ---- synthetic round trips -------------------------------------------------------------------


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("writer", [write_dlc_csv, write_dlc_h5])
@pytest.mark.parametrize("coords", [("x", "y", "likelihood"), ("x", "y", "z")])
def test_dlc_single_animal_round_trip(tmp_path, rng, writer, coords):
    parts = ["nose", "neck", "tail"]
    values = rng.uniform(0, 1, (7, len(parts) * len(coords)))
    values[3, :2] = np.nan
    path = tmp_path / ("video1" + (".csv" if writer is write_dlc_csv else ".h5"))
    writer(path, dlc_columns(parts, coords), values)
    recording = only(mio.load_keypoints(path))
    table = values.reshape(7, len(parts), len(coords))
    spatial = (table if "z" in coords else table[..., :2]).copy()
    spatial[3, 0] = np.nan  # a point with a missing coordinate is missing
    assert recording.name == "video1" and recording.keypoint_names == tuple(parts)
    np.testing.assert_array_equal(recording.Y, spatial)
    expected_conf = np.ones((7, 3)) if "z" in coords else table[..., 2]
    expected_conf[3, 0] = 0.0  # the missing point
    np.testing.assert_array_equal(recording.confidence, expected_conf)


@pytest.mark.parametrize("writer", [write_dlc_csv, write_dlc_h5])
def test_dlc_multi_animal_round_trip(tmp_path, rng, writer):
    columns = dlc_columns(["nose", "tail"], ("x", "y", "likelihood"), ["m1", "m2"])
    values = rng.uniform(0, 1, (5, len(columns)))
    values[:, 6:] = np.nan  # m2 never detected in frames ...
    values[2:, 6:] = rng.uniform(0, 1, (3, 6))  # ... 0 and 1
    path = tmp_path / ("pair" + (".csv" if writer is write_dlc_csv else ".h5"))
    writer(path, columns, values)
    recordings = mio.load_keypoints(path)
    assert list(recordings) == ["pair_m1", "pair_m2"]
    m2 = recordings["pair_m2"]
    np.testing.assert_array_equal(m2.Y[2:], values[2:, 6:].reshape(3, 2, 3)[..., :2])
    np.testing.assert_array_equal(m2.mask, [False, False, True, True, True])
    assert (m2.confidence[:2] == 0).all()


@pytest.mark.parametrize("matlab", [True, False])
def test_sleap_analysis_round_trip(tmp_path, rng, matlab):
    tracks = rng.uniform(0, 500, (8, 2, 3, 2))
    tracks[4, 1] = np.nan
    scores = rng.uniform(0, 1.2, (8, 2, 3))  # SLEAP peak scores may exceed 1
    path = tmp_path / "flies.h5"
    write_sleap_analysis(path, tracks, scores, ["a", "b", "c"], ["female", "male"], matlab)
    recordings = mio.load_keypoints(path)
    assert list(recordings) == ["flies_female", "flies_male"]
    male = recordings["flies_male"]
    np.testing.assert_array_equal(male.Y, tracks[:, 1])
    assert not male.mask[4] and male.mask.sum() == 7
    np.testing.assert_array_equal(male.confidence[4], 0.0)
    np.testing.assert_allclose(male.confidence[:4], np.clip(scores[:4, 1], 0, 1))


def test_sleap_analysis_untracked_single_animal(tmp_path, rng):
    tracks = rng.uniform(0, 500, (6, 1, 3, 2))
    write_sleap_analysis(tmp_path / "mouse.h5", tracks, node_names=["a", "b", "c"])
    recording = only(mio.load_keypoints(tmp_path / "mouse.h5"))
    assert recording.name == "mouse"
    np.testing.assert_array_equal(recording.Y, tracks[:, 0])
    np.testing.assert_array_equal(recording.confidence, 1.0)


def test_jabs_v2_round_trip(tmp_path, rng):
    points = rng.integers(1, 1000, (10, 12, 2))
    confidence = rng.uniform(0.1, 1, (10, 12))
    confidence[5, 3] = 0.0
    write_jabs(tmp_path / "cage_pose_est_v2.h5", points, confidence)
    recording = only(mio.load_keypoints(tmp_path / "cage_pose_est_v2.h5"))
    assert recording.name == "cage_pose_est_v2" and recording.keypoint_names == tuple(JABS_NODES)
    assert np.isnan(recording.Y[5, 3]).all()
    recording.Y[5, 3] = points[5, 3]
    np.testing.assert_array_equal(recording.Y, points)
    np.testing.assert_allclose(recording.confidence, confidence.astype(np.float32))


def test_jabs_multi_animal_by_identity(tmp_path, rng):
    # Two mice in slots that swap at frame 2; identity 0 (invalid) in slot 1 at frame 3.
    points = rng.integers(1, 1000, (4, 2, 12, 2))
    identity = np.array([[1, 2], [1, 2], [2, 1], [1, 0]], dtype=np.uint32)
    write_jabs(tmp_path / "pair_pose_est_v4.h5", points, np.ones((4, 2, 12)),
               instance_embed_id=identity, instance_id_center=np.zeros((2, 16)))
    recordings = mio.load_keypoints(tmp_path / "pair_pose_est_v4.h5")
    assert list(recordings) == ["pair_pose_est_v4_id1", "pair_pose_est_v4_id2"]
    np.testing.assert_array_equal(recordings["pair_pose_est_v4_id1"].Y, points[[0, 1, 2, 3],
                                                                              [0, 0, 1, 0]])
    mouse2 = recordings["pair_pose_est_v4_id2"]
    np.testing.assert_array_equal(mouse2.Y[:3], points[[0, 1, 2], [1, 1, 0]])
    np.testing.assert_array_equal(mouse2.mask, [True, True, True, False])


def test_jabs_v3_tracklets(tmp_path, rng):
    points = rng.integers(1, 1000, (3, 2, 12, 2))
    tracklet = np.array([[7, 0], [7, 9], [7, 9]], dtype=np.uint32)
    write_jabs(tmp_path / "pose_est_v3.h5", points, np.ones((3, 2, 12)),
               instance_track_id=tracklet, instance_count=np.array([1, 2, 2], dtype=np.uint8))
    recordings = mio.load_keypoints(tmp_path / "pose_est_v3.h5")
    assert list(recordings) == ["pose_est_v3_id7", "pose_est_v3_id9"]
    np.testing.assert_array_equal(recordings["pose_est_v3_id9"].mask, [False, True, True])


@pytest.mark.parametrize("dims", [2, 3])
def test_nwb_round_trip(tmp_path, rng, dims):
    nodes = ["snout", "ear", "base"]  # not alphabetical: the `nodes` order must win
    data = rng.normal(size=(9, 3, dims))
    data[2, 1] = np.nan
    confidence = rng.uniform(0, 1, (9, 3))
    write_nwb(tmp_path / "session.nwb", {"PoseEstimation": (nodes, data, confidence)}, rate=60.0)
    recording = only(mio.load_keypoints(tmp_path / "session.nwb"))
    assert recording.keypoint_names == tuple(nodes) and recording.fps == 60.0
    np.testing.assert_allclose(recording.Y, data)  # stored halved, `conversion` 2
    expected = confidence.copy()
    expected[2, 1] = 0.0
    np.testing.assert_allclose(recording.confidence, expected)


def test_nwb_two_animals_without_confidence(tmp_path, rng):
    data = rng.normal(size=(5, 2, 3))
    write_nwb(tmp_path / "s.nwb", {"PoseEstimation_a": (["p", "q"], data, None),
                                   "PoseEstimation_b": (["p", "q"], -data, None)})
    recordings = mio.load_keypoints(tmp_path / "s.nwb")
    assert list(recordings) == ["s_PoseEstimation_a", "s_PoseEstimation_b"]
    np.testing.assert_allclose(recordings["s_PoseEstimation_b"].Y, -data)
    assert recordings["s_PoseEstimation_a"].fps == pytest.approx(25.0)
    np.testing.assert_array_equal(recordings["s_PoseEstimation_a"].confidence, 1.0)


def test_folder_and_list_and_keypoint_subset(tmp_path, rng):
    for name in ["b", "a"]:
        write_dlc_csv(tmp_path / f"{name}.csv", dlc_columns(["nose", "neck", "tail"],
                                                            ("x", "y", "likelihood")),
                      rng.uniform(0, 1, (6, 9)))
    (tmp_path / "notes.txt").write_text("not a pose file")
    assert list(mio.load_keypoints(tmp_path)) == ["a", "b"]
    recordings = mio.load_keypoints([tmp_path / "b.csv", tmp_path / "a.csv"],
                                    keypoints=["tail", "nose"])
    assert list(recordings) == ["b", "a"]
    assert recordings["a"].keypoint_names == ("tail", "nose")
    assert recordings["a"].Y.shape == (6, 2, 2)


def test_keypoint_order_follows_first_recording(tmp_path, rng):
    values = rng.uniform(0, 1, (4, 6))
    write_dlc_csv(tmp_path / "a.csv", dlc_columns(["nose", "tail"], ("x", "y", "likelihood")),
                  values)
    write_dlc_csv(tmp_path / "b.csv", dlc_columns(["tail", "nose"], ("x", "y", "likelihood")),
                  values)
    recordings = mio.load_keypoints(tmp_path)
    assert recordings["b"].keypoint_names == ("nose", "tail")
    np.testing.assert_array_equal(recordings["b"].Y[:, 0], recordings["a"].Y[:, 1])


@pytest.mark.parametrize(("path", "expected"), [
    (DLC_CSV, "deeplabcut"), (NWB, "nwb"), (JABS, "jabs"), (SLEAP_H5, "sleap"),
    (SLEAP_SLP, "sleap"), (DATA / "dlc_pandas_h5" / "single_animal.h5", "deeplabcut"),
])
def test_detect_format(path, expected):
    assert mio.detect_format(path) == expected


# ---- batching --------------------------------------------------------------------------------


def two_recordings(tmp_path, rng):
    parts = ["nose", "neck", "tail"]
    long = rng.uniform(0, 100, (10, 9))
    long[4, 0:2] = np.nan  # nose missing at frame 4
    long[7, :] = np.nan  # no keypoint at frame 7
    short = rng.uniform(0, 100, (6, 9))
    short[:, 3:5] = np.nan  # neck never seen
    write_dlc_csv(tmp_path / "long.csv", dlc_columns(parts, ("x", "y", "likelihood")), long)
    write_dlc_csv(tmp_path / "short.csv", dlc_columns(parts, ("x", "y", "likelihood")), short)
    return mio.load_keypoints(tmp_path)


def test_to_batch_pads_masks_and_fills(tmp_path, rng):
    recordings = two_recordings(tmp_path, rng)
    with pytest.warns(mio.DataWarning, match=r"Keypoint 'neck' is missing in every frame of 1 "
                                             r"of the 2 recordings \('short'\).*mean of the "
                                             r"other keypoints.*drop it with `keypoints`"):
        batch = mio.to_batch(recordings, anterior=["nose"], posterior=["tail", "neck"])
    Y, conf, mask = batch.data["Y"], batch.data["conf"], batch.data["mask"]
    assert Y.shape == (2, 10, 3, 2) and conf.shape == (2, 10, 3) and mask.shape == (2, 10)
    assert Y.dtype == np.float64  # x64 is on in the tests
    assert np.isfinite(Y).all() and np.isfinite(conf).all()
    assert list(batch.keys) == ["long", "short"]
    assert batch.keypoint_names == ("nose", "neck", "tail")
    np.testing.assert_array_equal(batch.anterior_idxs, [0])
    np.testing.assert_array_equal(batch.posterior_idxs, [2, 1])
    np.testing.assert_array_equal(mask[0], [1, 1, 1, 1, 1, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(mask[1], [1] * 6 + [0] * 4)
    assert (conf[1, 6:] == 0).all() and (conf[0, 4, 0] == 0) and (conf[1, :, 1] == 0).all()
    long = recordings["long"].Y
    np.testing.assert_allclose(Y[0, 4, 0], (long[3, 0] + long[5, 0]) / 2)  # interpolated
    np.testing.assert_allclose(Y[0, 7], (long[6] + long[8]) / 2)
    short = recordings["short"].Y
    np.testing.assert_allclose(Y[1, :6, 1], short[:, [0, 2]].mean(axis=1))  # centroid


def test_unbatch_inverts_to_batch(tmp_path, rng):
    recordings = two_recordings(tmp_path, rng)
    for seg_length in (None, 4):
        with pytest.warns(mio.DataWarning, match="'neck'"):
            batch = mio.to_batch(recordings, seg_length=seg_length, seg_overlap=2)
        per_recording = mio.unbatch(batch.data["conf"], batch)
        assert list(per_recording) == ["long", "short"]
        for name, recording in recordings.items():
            np.testing.assert_array_equal(per_recording[name], recording.confidence)
    with pytest.raises(ValueError, match=r"`values` must have shape \(5, 6, ...\)"):
        mio.unbatch(batch.data["mask"][:, 1:], batch)


def test_to_batch_errors(tmp_path, rng):
    recordings = two_recordings(tmp_path, rng)
    with pytest.raises(ValueError, match=r"`anterior` names \['snout'\].*\['nose', 'neck'"):
        mio.to_batch(recordings, anterior=["snout"])
    with pytest.raises(ValueError, match="`posterior` names"):
        mio.to_batch(recordings, posterior="base")
    subset = {"long": recordings["long"], "short": recordings["short"].select(["tail", "nose"])}
    with pytest.raises(ValueError, match="'long' and 'short' have different keypoints"):
        mio.to_batch(subset)
    with pytest.raises(ValueError, match="`recordings` is empty"):
        mio.to_batch({})
    with pytest.raises(ValueError, match=r"`anterior` and `posterior` both name \['nose'\]: "
                                         r"the heading .* undefined.*front of the body"):
        mio.to_batch(recordings, anterior="nose", posterior=["nose"])
    with pytest.raises(ValueError, match=r"`seg_length` \(4\) must exceed `seg_overlap` \(30\)"
                                         r".*fitted about 8 times.*Raise `seg_length`"):
        mio.to_batch(recordings, seg_length=4)
    with pytest.raises(ValueError, match="`seg_length` \\(2\\) must exceed `seg_overlap` \\(2\\)"):
        mio.to_batch(recordings, seg_length=2, seg_overlap=2)


def test_a_keypoint_seen_in_no_recording_is_refused(tmp_path, rng):
    recordings = two_recordings(tmp_path, rng)
    recordings = {"short": recordings["short"], "again": recordings["short"]}
    with pytest.raises(ValueError, match=r"Keypoint 'neck' is missing in every frame of every "
                                         r"recording.*drop it with `keypoints` \(config "
                                         r"`data.keypoints`, `moseq init-project --keypoints`"):
        mio.to_batch(recordings)


# ---- corrupted values ------------------------------------------------------------------------


def test_text_in_a_dlc_csv_cell_is_refused_with_its_line_and_column(tmp_path, rng):
    """An empty cell (pandas' missing value) or `nan` is a missing point; any other text is a
    corrupted file, never read as missing."""
    values = rng.uniform(0, 1, (4, 6))
    path = tmp_path / "video.csv"
    write_dlc_csv(path, dlc_columns(["nose", "tail"], ("x", "y", "likelihood")), values)
    lines = path.read_text().splitlines()
    cells = lines[5].split(",")  # frame 2, after the three header rows
    cells[1], cells[5] = "", "nan"  # nose/x missing, tail/y missing
    lines[5] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n\n")  # a trailing blank line is no row
    recording = only(mio.load_keypoints(path))
    assert np.isnan(recording.Y[2]).all(axis=-1).tolist() == [True, True]
    np.testing.assert_array_equal(recording.Y[3], values[3].reshape(2, 3)[:, :2])
    for bad in ("abc", "inf", "1.5.2"):
        cells[2] = bad  # nose/y, column 3 (after the index)
        lines[5] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(ValueError, match=rf"video.csv, line 6, column 3 \(nose/y\): "
                                             rf"'{re.escape(bad)}' is not a finite number.*empty "
                                             r"for a missing point"):
            mio.load_keypoints(path)


def test_infinite_or_non_numeric_values_in_hdf5_files_are_named(tmp_path, rng):
    tracks = rng.uniform(0, 500, (6, 1, 3, 2))
    tracks[2, 0, 1, 0] = np.inf
    write_sleap_analysis(tmp_path / "fly.h5", tracks, node_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"fly.h5: 1 keypoint coordinates are infinite \(first: "
                                         r"frame 2, keypoint 'b'\); a missing point must be NaN"):
        mio.load_keypoints(tmp_path / "fly.h5")
    path = tmp_path / "session.nwb"
    write_nwb(path, {"PoseEstimation": (["p", "q"], rng.normal(size=(4, 2, 2)), None)}, rate=30.0)
    with h5py.File(path, "a") as file:
        series = file["processing/behavior/PoseEstimation/q"]
        del series["data"]
        series["data"] = np.array([[b"1.0", b"abc"]] * 4)
    with pytest.raises(ValueError, match=r"session.nwb: its `/processing/behavior/PoseEstimation/"
                                         r"q/data` values are not numbers .*corrupted"):
        mio.load_keypoints(path)
    text = np.array([["1.0", "2.0", "x"]] * 3, dtype="S8")
    write_dlc_h5(tmp_path / "dlc.h5", dlc_columns(["nose"], ("x", "y", "likelihood")), text,
                 dtype="S8")
    with pytest.raises(ValueError, match=r"dlc.h5: its values are not numbers"):
        mio.load_keypoints(tmp_path / "dlc.h5")


# ---- errors of load_keypoints ----------------------------------------------------------------


def test_unknown_and_unreadable_files_are_named(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes.txt.*DeepLabCut .csv/.h5, SLEAP"):
        mio.load_keypoints(text)
    garbage = tmp_path / "broken.h5"
    garbage.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="Cannot open .*broken.h5 as HDF5"):
        mio.load_keypoints(garbage)
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file["something"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"Cannot tell the pose format of .*other.h5"):
        mio.load_keypoints(tmp_path / "other.h5")
    with pytest.raises(ValueError, match=r"Cannot read .*other.h5 as jabs"):
        mio.load_keypoints(tmp_path / "other.h5", format="jabs")
    not_dlc = tmp_path / "table.csv"
    not_dlc.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="table.csv is not a DeepLabCut predictions CSV"):
        mio.load_keypoints(not_dlc)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("scorer,s,s\nbodyparts,a,a\ncoords,x,y\n0,1,2\n1,2\n")
    with pytest.raises(ValueError, match="ragged.csv: cannot parse its rows as numbers"):
        mio.load_keypoints(ragged)
    with pytest.raises(ValueError, match=r"extension '.csv', which jabs files do not have"):
        mio.load_keypoints(not_dlc, format="jabs")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        mio.load_keypoints(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="`format` must be one of"):
        mio.load_keypoints(text, format="dlc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no file with extension"):
        mio.load_keypoints(tmp_path / "empty")


def test_mismatched_keypoints_name_both_sets():
    with pytest.raises(ValueError, match=r"'openfield_dlc_inference_example' and 'sample_nwb_' "
                                         r"have different keypoints: \['snout'.*\['ind1_snout'"):
        mio.load_keypoints(DATA / "dlc_openfield_mouse")


def test_keypoint_and_individual_selection_errors():
    with pytest.raises(ValueError, match=r"`keypoints` names \['nose'\].*choose from \['snout'"):
        mio.load_keypoints(DLC_CSV, keypoints=["snout", "nose"])
    with pytest.raises(ValueError, match="`keypoints` must name distinct keypoints"):
        mio.load_keypoints(DLC_CSV, keypoints=["snout", "snout"])
    with pytest.raises(ValueError, match=r"`individual`=\[.track_7.\] .*\['track_0', 'track_1'\]"):
        mio.load_keypoints(SLEAP_H5, individual="track_7")


def test_min_frames_and_empty_recordings(tmp_path, rng):
    with pytest.raises(ValueError, match=r"'openfield_dlc_inference_example' .* has 2330 frames, "
                                         r"fewer than `min_frames`=3000"):
        mio.load_keypoints(DLC_CSV, min_frames=3000)
    write_dlc_csv(tmp_path / "blank.csv", dlc_columns(["a"], ("x", "y", "likelihood")),
                  np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="'blank' .* has no frame with any keypoint"):
        mio.load_keypoints(tmp_path / "blank.csv")
    write_dlc_csv(tmp_path / "header.csv", dlc_columns(["a"], ("x", "y")), np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"'header' .* has 0 frames, fewer than `min_frames`=1"):
        mio.load_keypoints(tmp_path / "header.csv")


def test_duplicate_recording_names(tmp_path, rng):
    for folder in ["day1", "day2"]:
        (tmp_path / folder).mkdir()
        write_dlc_csv(tmp_path / folder / "mouse.csv", dlc_columns(["a"], ("x", "y")),
                      rng.uniform(0, 1, (3, 2)))
    with pytest.raises(ValueError, match=r"Two recordings are named 'mouse': from .*day1"):
        mio.load_keypoints([tmp_path / "day1", tmp_path / "day2"])
