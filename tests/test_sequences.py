import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from moseq.ops.sequences import concatenate_stateseqs, get_durations, get_frequencies

DOCUMENTED = {"name1": np.array([1, 1, 2, 2, 2, 3]), "name2": np.array([0, 0, 0, 1])}


def test_documented_examples():
    np.testing.assert_array_equal(get_durations(DOCUMENTED), [2, 3, 1, 3, 1])
    np.testing.assert_allclose(get_frequencies(DOCUMENTED, runlength=True), [0.2, 0.4, 0.2, 0.2])
    np.testing.assert_allclose(get_frequencies(DOCUMENTED, runlength=False), [0.3, 0.3, 0.3, 0.1])
    np.testing.assert_array_equal(concatenate_stateseqs(DOCUMENTED), [1, 1, 2, 2, 2, 3, 0, 0, 0, 1])


def test_list_input_and_plain_lists_as_entries():
    stateseqs = [[1, 1, 2, 2, 2, 3], [0, 0, 0, 1]]
    np.testing.assert_array_equal(get_durations(stateseqs), [2, 3, 1, 3, 1])
    np.testing.assert_allclose(get_frequencies(stateseqs), [0.2, 0.4, 0.2, 0.2])


def test_runs_do_not_merge_across_recordings_or_rows():
    # The reference would report a run of 2 for the 1s at the seam (its defect A19).
    np.testing.assert_array_equal(get_durations({"a": [0, 1], "b": [1, 2]}), [1, 1, 1, 1])
    np.testing.assert_array_equal(get_durations(np.array([[1, 1], [1, 1]])), [2, 2])
    np.testing.assert_allclose(get_frequencies(np.array([[1, 1], [1, 1]])), [0.0, 1.0])


def test_mask_is_aligned_with_the_end_and_splits_runs():
    stateseqs = np.array([[1, 1, 1, 1], [2, 2, 3, 3]])
    # Two leading mask entries are dropped (e.g. the AR order); then [1, 0, 1, 1] and [1]*4.
    mask = np.array([[0, 0, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(concatenate_stateseqs(stateseqs, mask), [1, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(get_durations(stateseqs, mask), [1, 2, 2, 2])
    np.testing.assert_allclose(get_frequencies(stateseqs, mask), [0.0, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(
        get_frequencies(stateseqs, mask, runlength=False), [0.0, 3 / 7, 2 / 7, 2 / 7]
    )


def test_extra_leading_axes_and_float_mask():
    stateseqs = np.array([[[0, 0, 1]], [[1, 1, 1]]])  # (2, 1, 3)
    mask = np.array([[[1.0, 1.0, 0.0]], [[1.0, 1.0, 1.0]]])
    np.testing.assert_array_equal(get_durations(stateseqs, mask), [2, 3])


def test_num_states_pads_the_frequencies():
    np.testing.assert_allclose(get_frequencies({"a": [0, 1]}, num_states=4), [0.5, 0.5, 0, 0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: get_durations(DOCUMENTED, mask=np.ones(6)), "mask"),
        (lambda: get_durations(np.zeros((2, 5), int), np.ones((2, 4))), "mask"),
        (lambda: get_durations(np.zeros((2, 5), int), np.ones((3, 5))), "mask"),
        (lambda: get_durations(np.int64(3)), "time axis"),
        (lambda: get_frequencies(DOCUMENTED, num_states=3), "num_states"),
        (lambda: get_frequencies(np.zeros((2, 3), int), np.zeros((2, 3))), "no valid frames"),
        (lambda: get_frequencies(np.array([0.5, 1.0])), "integer"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def runs_by_loop(rows, masks):
    """Plain-Python (state, length) runs: a run ends at a change, a masked frame or a row end."""
    runs = []
    for row, mask in zip(rows, masks, strict=True):
        current, length = None, 0
        for state, valid in zip(row, mask, strict=True):
            if valid and length and state == current:
                length += 1
                continue
            if length:
                runs.append((current, length))
            current, length = (state, 1) if valid else (None, 0)
        if length:
            runs.append((current, length))
    return runs


@st.composite
def masked_stateseqs(draw):
    num_rows = draw(st.integers(1, 4))
    num_frames = draw(st.integers(1, 20))
    extra = draw(st.integers(0, 3))
    states = st.lists(st.integers(0, 3), min_size=num_frames, max_size=num_frames)
    flags = st.lists(st.booleans(), min_size=num_frames + extra, max_size=num_frames + extra)
    rows = draw(st.lists(states, min_size=num_rows, max_size=num_rows))
    masks = draw(st.lists(flags, min_size=num_rows, max_size=num_rows))
    return np.array(rows), np.array(masks, dtype=int)


@given(masked_stateseqs())
def test_matches_a_plain_python_loop(arrays):
    stateseqs, mask = arrays
    aligned_mask = mask[:, mask.shape[1] - stateseqs.shape[1] :]
    runs = runs_by_loop(stateseqs, aligned_mask)
    np.testing.assert_array_equal(get_durations(stateseqs, mask), [length for _, length in runs])

    valid_states = stateseqs[aligned_mask > 0]
    np.testing.assert_array_equal(concatenate_stateseqs(stateseqs, mask), valid_states)
    if valid_states.size:
        frame_counts = np.bincount(valid_states, minlength=4)
        np.testing.assert_allclose(
            get_frequencies(stateseqs, mask, num_states=4, runlength=False),
            frame_counts / frame_counts.sum(),
        )
        run_counts = np.bincount([state for state, _ in runs], minlength=4)
        np.testing.assert_allclose(
            get_frequencies(stateseqs, mask, num_states=4), run_counts / run_counts.sum()
        )
