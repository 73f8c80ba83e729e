import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from moseq.ops.batching import (
    batch,
    find_optimal_segment_length,
    pad_along_axis,
    segment_ownership,
    unbatch,
)


def test_pad_along_axis():
    arr = np.arange(6).reshape(2, 3)
    padded = pad_along_axis(arr, (1, 2), axis=1, value=-1)
    np.testing.assert_array_equal(padded, [[-1, 0, 1, 2, -1, -1], [-1, 3, 4, 5, -1, -1]])
    np.testing.assert_array_equal(pad_along_axis(arr, (0, 1), axis=-2), [*arr, [0, 0, 0]])


def test_segments_bounds_and_padding_on_a_small_case():
    data_dict = {"b": np.arange(5), "a": np.arange(10, 17)}
    data, mask, (keys, bounds) = batch(data_dict, seg_length=3, seg_overlap=2)
    np.testing.assert_array_equal(keys, ["a", "a", "a", "b", "b"])  # sorted
    np.testing.assert_array_equal(bounds, [[0, 5], [3, 7], [6, 7], [0, 5], [3, 5]])
    np.testing.assert_array_equal(
        data,
        [
            [10, 11, 12, 13, 14],
            [13, 14, 15, 16, 16],
            [16, 16, 16, 16, 16],
            [0, 1, 2, 3, 4],
            [3, 4, 4, 4, 4],
        ],
    )
    np.testing.assert_array_equal(mask.sum(1), [5, 4, 1, 5, 2])
    assert mask.dtype == float


def test_keys_choose_and_order_recordings():
    data_dict = {"a": np.zeros(3), "b": np.ones(4), "c": np.ones(2)}
    data, mask, (keys, bounds) = batch(data_dict, keys=["c", "a"])
    np.testing.assert_array_equal(keys, ["c", "a"])
    assert data.shape == mask.shape == (2, 3)  # as long as the longest chosen recording
    np.testing.assert_array_equal(bounds, [[0, 2], [0, 3]])


def test_unbatch_takes_the_overlap_from_the_earlier_segment():
    data_dict = {"x": np.arange(10.0)}
    data, _, (keys, bounds) = batch(data_dict, seg_length=4, seg_overlap=3)
    np.testing.assert_array_equal(bounds, [[0, 7], [4, 10], [8, 10]])
    # Tag each copy with its segment so that the two copies of an overlap frame differ.
    tagged = data + 100 * np.arange(len(data))[:, None]
    stitched = unbatch(tagged, keys, bounds)["x"]
    # Frames 0-6 from segment 0, 7-9 from segment 1 (8-9 also lie in segment 2).
    np.testing.assert_array_equal(stitched, np.arange(10) + np.array([0] * 7 + [100] * 3))


def test_ownership_matches_unbatch_and_counts_each_frame_once():
    data_dict = {"x": np.arange(10.0), "y": np.arange(3.0)}
    seg_overlap = 3
    data, mask, (keys, bounds) = batch(data_dict, seg_length=4, seg_overlap=seg_overlap)
    owned = np.asarray(jax.jit(segment_ownership)(mask, bounds, seg_overlap))
    np.testing.assert_array_equal(
        owned,
        [
            [1, 1, 1, 1, 1, 1, 1],
            [0, 0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 0, 0],  # (8, 10) lies inside the previous segment's overlap
            [1, 1, 1, 0, 0, 0, 0],
        ],
    )
    assert owned.dtype == mask.dtype
    frame_index = data  # the data are the frame indices, so owned frames must cover 0..T-1
    np.testing.assert_array_equal(
        np.sort(frame_index[(owned > 0) & (keys == "x")[:, None]]), np.arange(10)
    )


@st.composite
def ragged_recordings(draw):
    num_recordings = draw(st.integers(1, 5))
    trailing = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    lengths = draw(st.lists(st.integers(1, 200), min_size=num_recordings, max_size=num_recordings))
    offset = 0
    data_dict = {}
    for index, length in enumerate(lengths):
        size = length * int(np.prod(trailing))
        # Distinct values everywhere, so a misplaced frame cannot go unnoticed.
        data_dict[f"rec{index}"] = np.arange(offset, offset + size).reshape(length, *trailing)
        offset += size
    seg_length = draw(st.none() | st.integers(1, 60))
    seg_overlap = draw(st.integers(0, 40))
    return data_dict, seg_length, seg_overlap


@given(ragged_recordings())
def test_batch_unbatch_round_trip(case):
    data_dict, seg_length, seg_overlap = case
    data, mask, (keys, bounds) = batch(data_dict, seg_length=seg_length, seg_overlap=seg_overlap)
    longest = max(len(recording) for recording in data_dict.values())
    overlap_used = 0 if seg_length is None else seg_overlap
    padded_length = longest if seg_length is None else seg_length + seg_overlap
    trailing = next(iter(data_dict.values())).shape[1:]
    assert data.shape == (len(keys), padded_length, *trailing)
    assert mask.shape == (len(keys), padded_length)

    restored = unbatch(data, keys, bounds)
    assert list(restored) == sorted(data_dict)
    for key, recording in data_dict.items():
        np.testing.assert_array_equal(restored[key], recording)

    lengths = bounds[:, 1] - bounds[:, 0]
    np.testing.assert_array_equal(mask.sum(1), lengths)
    for row, length in enumerate(lengths):
        assert np.all(mask[row, :length] == 1) and np.all(mask[row, length:] == 0)
        np.testing.assert_array_equal(
            data[row, length:], np.broadcast_to(data[row, length - 1], data[row, length:].shape)
        )

    owned = np.asarray(jax.jit(segment_ownership)(mask, bounds, overlap_used))
    for key, recording in data_dict.items():
        assert owned[keys == key].sum() == len(recording)


def test_seg_length_none_gives_one_unpadded_segment_per_recording():
    data, mask, (keys, bounds) = batch({"a": np.ones((4, 2)), "b": np.ones((6, 2))}, seg_overlap=30)
    assert data.shape == (2, 6, 2)
    np.testing.assert_array_equal(bounds, [[0, 4], [0, 6]])
    np.testing.assert_array_equal(mask.sum(1), [4, 6])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data_dict": {}}, "empty"),
        ({"data_dict": {"a": np.zeros((3, 2)), "b": np.zeros((3, 3))}}, "shape after the time"),
        ({"data_dict": {"a": np.zeros(0)}}, "at least one frame"),
        ({"data_dict": {"a": np.zeros(3)}, "keys": ["b"]}, "missing"),
        ({"data_dict": {"a": np.zeros(3)}, "keys": []}, "empty"),
        ({"data_dict": {"a": np.zeros(3)}, "seg_length": 0}, "seg_length"),
        ({"data_dict": {"a": np.zeros(3)}, "seg_length": 2.5}, "seg_length"),
        ({"data_dict": {"a": np.zeros(3)}, "seg_length": 2, "seg_overlap": -1}, "seg_overlap"),
    ],
)
def test_batch_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        batch(**kwargs)


def test_unbatch_rejects_inconsistent_metadata():
    with pytest.raises(ValueError, match="same"):
        unbatch(np.zeros((2, 5)), ["a"], np.array([[0, 5], [5, 10]]))
    with pytest.raises(ValueError, match="span"):
        unbatch(np.zeros((1, 5)), ["a"], np.array([[0, 6]]))


@pytest.mark.parametrize(
    ("lengths", "kwargs", "expected"),
    [
        ([100, 100], {}, 100),
        ([1000, 600], {}, 1000),  # padding 400 / 1600 = 25%
        ([1000, 10], {}, 10),  # 1000 would pad 98%; 10 divides both
        ([30000, 25000], {}, 10000),  # capped; 5000 / 55000 padding
        ([21, 30], {"max_segment_length": 10}, 11),  # 10 leaves a 1-frame fragment of 21
        ([10, 7], {"max_percent_padding": 20}, 10),  # padding 3 / 17 = 17.6%
    ],
)
def test_find_optimal_segment_length(lengths, kwargs, expected):
    assert find_optimal_segment_length(lengths, **kwargs) == expected


def test_find_optimal_segment_length_falls_back_with_a_warning():
    with pytest.warns(UserWarning, match="padding"):
        seg_length = find_optimal_segment_length([10, 7], max_percent_padding=0)
    assert seg_length == 10000


def test_find_optimal_segment_length_rejects_too_short_recordings():
    with pytest.raises(ValueError, match="min_fragment_length"):
        find_optimal_segment_length([100, 3])
