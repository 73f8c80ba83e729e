"""Tests of moseq.export: relabelling, per-recording results, HDF5 and CSV files."""

from __future__ import annotations

import csv
import os
import re

import h5py
import numpy as np
import pytest

import moseq
from moseq import export
from moseq.io import Batch
from moseq.ops import batching, get_frequencies

NLAGS = 2


def runs(labels, lengths):
    return np.repeat(np.asarray(labels), lengths)


def fitted(num_rows=3, num_frames=40, num_states=5, latent_dim=3, seed=0):
    """A small synthetic 'fitted' state and data; row 1 ends in padding, row 2 has a gap."""
    assert num_rows >= 3
    rng = np.random.default_rng(seed)
    mask = np.ones((num_rows, num_frames))
    mask[1, 30:] = 0
    mask[2, 10:13] = 0
    z = rng.integers(num_states, size=(num_rows, num_frames - NLAGS))
    state = {
        "z": z,
        "x": rng.normal(size=(num_rows, num_frames, latent_dim)),
        "v": rng.normal(size=(num_rows, num_frames, 2)),
        "h": rng.uniform(-np.pi, np.pi, size=(num_rows, num_frames)),
        "pi": np.full((num_states, num_states), 1 / num_states),
    }
    return state, {"mask": mask}


def test_relabel_puts_most_used_first_and_permutation_is_consistent():
    z = np.stack([runs([3, 1, 3, 0, 3, 1], [4, 2, 3, 1, 5, 2]), runs([2, 3, 1], [5, 6, 6])])
    mask = np.ones((2, z.shape[1] + NLAGS))
    relabelled, permutation = export.relabel_by_frequency(z, mask, num_states=5)

    # Runs: state 3 four times, 1 three times, 0, 2 once each, 4 never.
    np.testing.assert_array_equal(permutation, [3, 1, 0, 2, 4])
    np.testing.assert_array_equal(permutation[relabelled], z)
    np.testing.assert_array_equal(np.argsort(permutation)[z], relabelled)
    assert relabelled[0, 0] == 0 and relabelled[0, 4] == 1
    frequencies = get_frequencies(relabelled, mask, num_states=5)
    assert np.all(np.diff(frequencies) <= 0)


def test_relabel_by_frames_and_ignores_masked_frames():
    z = np.array([runs([0, 1, 2], [2, 5, 9])])
    mask = np.ones((1, z.shape[1]))
    mask[0, 7:] = 0  # all of state 2 is masked
    relabelled, permutation = export.relabel_by_frequency(z, mask, 3, runlength=False)
    np.testing.assert_array_equal(permutation, [1, 0, 2])
    np.testing.assert_array_equal(relabelled[0, :7], runs([1, 0], [2, 5]))


def test_results_without_batch_drop_masked_frames_and_pad_syllables():
    state, data = fitted()
    results = export.results_per_recording(state, data, NLAGS, names=["a", "b", "c"],
                                           relabel=False)
    assert list(results) == ["a", "b", "c"]
    assert set(results["a"]) == {"frame", "syllable", "syllable_probability", "latent_state",
                                 "centroid", "heading"}
    np.testing.assert_array_equal(results["b"]["frame"], np.arange(30))
    kept = np.r_[0:10, 13:40]
    np.testing.assert_array_equal(results["c"]["frame"], kept)
    for row, name in enumerate("abc"):
        frames = results[name]["frame"]
        syllables = np.r_[[state["z"][row, 0]] * NLAGS, state["z"][row]]
        np.testing.assert_array_equal(results[name]["syllable"], syllables[frames])
        np.testing.assert_array_equal(results[name]["latent_state"], state["x"][row, frames])
        np.testing.assert_array_equal(results[name]["centroid"], state["v"][row, frames])
        np.testing.assert_array_equal(results[name]["heading"], state["h"][row, frames])
        assert np.isnan(results[name]["syllable_probability"]).all()


def test_results_relabel_and_marginals_follow_the_permutation():
    state, data = fitted()
    num_states = 5
    # The sampled syllable has probability 0.6, the others share the rest.
    marginals = np.full((*state["z"].shape, num_states), 0.1)
    np.put_along_axis(marginals, state["z"][..., None], 0.6, axis=-1)
    results = export.results_per_recording(state, data, NLAGS, marginals=marginals)
    _, permutation = export.relabel_by_frequency(state["z"], data["mask"], num_states)
    for row, name in enumerate(results):
        frames = results[name]["frame"]
        np.testing.assert_allclose(results[name]["syllable_probability"], 0.6)
        original = np.r_[[state["z"][row, 0]] * NLAGS, state["z"][row]][frames]
        np.testing.assert_array_equal(permutation[results[name]["syllable"]], original)


def test_results_with_batch_stitch_segments_back_into_recordings():
    lengths = {"mouse1": 50, "mouse2": 23}
    frame_numbers = {name: np.arange(length, dtype=float) for name, length in lengths.items()}
    stacked, mask, (keys, bounds) = batching.batch(frame_numbers, seg_length=20, seg_overlap=5)
    mask[0, 7] = 0  # frame 7 of mouse1 has no keypoints
    batch = Batch({"mask": mask}, keys, bounds, ("nose", "tail"), np.array([0]), np.array([1]))
    # Every per-frame variable holds the recording's frame number, so stitching is checkable.
    state = {"z": np.zeros((len(keys), mask.shape[1] - NLAGS), dtype=int),
             "h": stacked, "v": np.stack([stacked, -stacked], axis=-1), "pi": np.eye(3)}
    results = export.results_per_recording(state, {"mask": mask}, NLAGS, batch=batch)

    assert list(results) == ["mouse1", "mouse2"]
    for name, length in lengths.items():
        expected = np.setdiff1d(np.arange(length), [7] if name == "mouse1" else [])
        np.testing.assert_array_equal(results[name]["frame"], expected)
        np.testing.assert_array_equal(results[name]["heading"], expected)
        np.testing.assert_array_equal(results[name]["centroid"][:, 1], -expected)
        assert "latent_state" not in results[name]


def test_a_given_syllable_order_numbers_the_syllables_whatever_their_frequency():
    """A fitted model's numbering is kept on new data: syllable = argsort(order)[state]."""
    state, data = fitted()
    order = np.array([4, 2, 0, 3, 1])  # order[syllable] = state
    states = export.results_per_recording(state, data, NLAGS, relabel=False)
    results = export.results_per_recording(state, data, NLAGS, syllable_order=order)
    by_frequency = export.results_per_recording(state, data, NLAGS)
    assert not np.array_equal(export.syllable_order_of(states, 5), order)
    for name, table in results.items():
        np.testing.assert_array_equal(order[table["syllable"]], states[name]["syllable"])
        np.testing.assert_array_equal(table["frame"], by_frequency[name]["frame"])
    renumbered = export.renumber(states, export.syllable_order_of(states, 5))
    for name, table in by_frequency.items():
        np.testing.assert_array_equal(renumbered[name]["syllable"], table["syllable"])


def test_frequency_order_counts_runs_of_the_exported_frames_split_at_gaps():
    """State 1 fills recording a (8 frames) in two runs, split by missing frames 6-7;
    states 0 and 2 make two runs each in b."""
    results = {"a": {"frame": np.r_[0:6, 8:10], "syllable": np.array([1] * 8)},
               "b": {"frame": np.arange(5), "syllable": np.array([0, 2, 0, 2, 2])}}
    np.testing.assert_array_equal(export.syllable_order_of(results, 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(export.syllable_order_of(results, 4, runlength=False),
                                  [1, 2, 0, 3])
    results["a"]["frame"] = np.arange(8)  # no gap: state 1 is one run
    np.testing.assert_array_equal(export.syllable_order_of(results, 4), [0, 2, 1, 3])


def test_renumber_refuses_an_order_that_is_not_the_models():
    state, data = fitted()
    states = export.results_per_recording(state, data, NLAGS, relabel=False)
    with pytest.raises(ValueError, match="permutation of 0..K-1"):
        export.renumber(states, [0, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="beyond the 3 states"):
        export.renumber(states, [2, 0, 1])


def test_results_name_a_wrong_nlags():
    state, data = fitted()
    with pytest.raises(ValueError, match="nlags"):
        export.results_per_recording(state, data, NLAGS + 1)


def documented_names():
    """Dataset names and root attributes listed in the module docstring's layout."""
    root, groups = export.__doc__.split("Layout of")[1].split("/{recording}/")
    datasets = re.findall(r"^ {8}(\w+) +\(", groups, flags=re.MULTILINE)
    attributes = re.findall(r"(\w+) = ", root) + ["moseq_version"]
    assert attributes == ["format", "format_version", "moseq_version"]
    return datasets, attributes


def test_h5_round_trip_in_the_documented_layout(tmp_path):
    state, data = fitted()
    results = export.results_per_recording(state, data, NLAGS, names=["a", "b", "c"])
    metadata = {"fps": 30.0, "keypoint_names": ["nose", "neck", "tail"],
                "hyperparameters": {"kappa": 1e6, "nlags": NLAGS, "transitions": "hdp"},
                "skipped": None}
    path = tmp_path / "results.h5"
    export.save_results_h5(path, results, metadata)

    datasets, attributes = documented_names()
    assert set(datasets) == set(export.FIELDS)
    with h5py.File(path, "r") as file:
        assert set(file) == {"a", "b", "c"}
        for name in file:
            assert set(file[name]) == set(datasets)
        for attribute in attributes:
            assert attribute in file.attrs
        assert file.attrs["hyperparameters.kappa"] == 1e6

    loaded, loaded_metadata = export.load_results_h5(path)
    assert loaded_metadata == {**{k: v for k, v in metadata.items() if v is not None},
                               "format_version": 1, "moseq_version": moseq.__version__}
    assert set(loaded) == set(results)
    for name in results:
        assert set(loaded[name]) == set(results[name])
        for field, value in results[name].items():
            np.testing.assert_array_equal(loaded[name][field], value)
            assert loaded[name][field].dtype == value.dtype


def test_h5_write_is_atomic(tmp_path):
    state, data = fitted()
    results = export.results_per_recording(state, data, NLAGS)
    path = tmp_path / "results.h5"
    export.save_results_h5(path, results, {"fps": 30})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        export.save_results_h5(path, results, {"unstorable": [object()]})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["results.h5"]


def test_h5_refuses_names_that_are_paths_and_foreign_files(tmp_path):
    state, data = fitted()
    results = export.results_per_recording(state, data, NLAGS, names=["dir/name", "b", "c"])
    with pytest.raises(ValueError, match="rename"):
        export.save_results_h5(tmp_path / "r.h5", results)
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file["x"] = 1
    with pytest.raises(ValueError, match="not a moseq results file"):
        export.load_results_h5(tmp_path / "other.h5")


def test_csv_has_one_file_per_recording_with_the_documented_columns(tmp_path):
    state, data = fitted()
    results = export.results_per_recording(state, data, NLAGS, names=["a", "b", "c"])
    paths = export.save_results_csv(tmp_path / "csv", results)
    assert [os.path.basename(p) for p in paths] == ["a.csv", "b.csv", "c.csv"]
    with open(paths[2], newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["frame", "syllable", "syllable_probability", "latent_state_0",
                       "latent_state_1", "latent_state_2", "centroid_x", "centroid_y",
                       "heading"]
    table = np.array(rows[1:], dtype=float)
    assert len(table) == len(results["c"]["frame"])
    np.testing.assert_array_equal(table[:, 0], results["c"]["frame"])
    np.testing.assert_array_equal(table[:, 1], results["c"]["syllable"])
    assert np.isnan(table[:, 2]).all()
    np.testing.assert_allclose(table[:, 6:8], results["c"]["centroid"], rtol=1e-7)
    np.testing.assert_allclose(table[:, 8], results["c"]["heading"], rtol=1e-7)


def test_csv_of_an_arhmm_has_latent_state_from_the_data(tmp_path):
    state, data = fitted()
    data = {**data, "x": state.pop("x")}
    del state["v"], state["h"]
    results = export.results_per_recording(state, data, NLAGS)
    path = export.save_results_csv(tmp_path, results)[0]
    with open(path, newline="") as file:
        header = next(csv.reader(file))
    assert header == ["frame", "syllable", "syllable_probability", "latent_state_0",
                      "latent_state_1", "latent_state_2"]
