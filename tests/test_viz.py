"""Tests of moseq.viz: every figure is drawn and saved, trajectories are aligned, reports
reference their images."""

from __future__ import annotations

import os
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from moseq import viz  # noqa: E402
from moseq.export import results_per_recording  # noqa: E402
from moseq.io import Batch  # noqa: E402
from moseq.ops import batching, get_durations, get_frequencies  # noqa: E402
from moseq.ops.geometry import rigid_transform  # noqa: E402
from moseq.ops.labels import relabel_by_frequency  # noqa: E402

NLAGS = 2
TEMPLATES = {  # egocentric pose (4 keypoints, 2-D) of each syllable; the nose is along +x
    0: np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]]),
    1: np.array([[1.5, 1.0], [1.0, 0.0], [0.0, 0.0], [-1.0, -0.5]]),
    2: np.array([[1.0, -1.0], [0.5, 0.0], [0.0, 0.0], [-1.0, 0.5]]),
}


def synthetic_fit(num_rows=3, num_frames=120, seed=0):
    """Syllables in runs of 8-14 frames; each frame's keypoints are its syllable's template,
    turned by a heading and moved to a centroid that are constant within each run."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((num_rows, num_frames), dtype=int)
    heading = np.zeros((num_rows, num_frames))
    centroid = np.zeros((num_rows, num_frames, 2))
    for row in range(num_rows):
        start = 0
        while start < num_frames:
            end = start + rng.integers(8, 15)
            previous = labels[row, start - 1] if start else -1
            labels[row, start:end] = rng.choice([s for s in TEMPLATES if s != previous])
            heading[row, start:end] = rng.uniform(-np.pi, np.pi)
            centroid[row, start:end] = rng.normal(scale=20, size=2)
            start = end
    egocentric = np.stack([TEMPLATES[s] for s in labels.ravel()]).reshape(
        num_rows, num_frames, 4, 2)
    Y = np.asarray(rigid_transform(egocentric, centroid, heading))
    mask = np.ones((num_rows, num_frames))
    mask[1, 100:] = 0
    state = {"z": labels[:, NLAGS:], "v": centroid, "h": heading,
             "pi": np.full((4, 4), 0.25), "x": rng.normal(size=(num_rows, num_frames, 2))}
    return state, {"Y": Y, "mask": mask}


@pytest.fixture(scope="module")
def fit():
    return synthetic_fit()


def assert_saved(path):
    assert os.path.isfile(path) and os.path.getsize(path) > 0


@pytest.mark.parametrize("with_durations", [False, True])
def test_plot_progress(tmp_path, with_durations):
    trace = {"log_joint": -1000 + np.cumsum(np.ones(20))}
    if with_durations:
        trace["median_duration"] = np.linspace(2, 9, 20)
    fig = viz.plot_progress(trace, path=tmp_path / "progress.png")
    assert len(fig.axes) == (2 if with_durations else 1)
    assert_saved(tmp_path / "progress.png")
    fig = viz.plot_progress({"log_joint": np.zeros(3)}, durations=np.ones(3),
                            path=tmp_path / "progress.pdf")
    assert len(fig.axes) == 2
    assert_saved(tmp_path / "progress.pdf")


def test_plot_syllable_usage_sorts_the_used_syllables(tmp_path, fit):
    state, data = fit
    fig = viz.plot_syllable_usage(state["z"], data["mask"], num_states=4,
                                  path=tmp_path / "usage.png")
    assert_saved(tmp_path / "usage.png")
    (ax,) = fig.axes
    heights = [bar.get_height() for bar in ax.patches]
    assert len(heights) == 3  # syllable 3 is never used
    assert heights == sorted(heights, reverse=True)
    np.testing.assert_allclose(sum(heights), 1)


def test_plot_durations(tmp_path, fit):
    state, data = fit
    fig = viz.plot_durations(state["z"], data["mask"], fps=30, path=tmp_path / "durations.pdf")
    assert len(fig.axes) == 1
    assert "s)" in fig.axes[0].get_xlabel()
    assert_saved(tmp_path / "durations.pdf")


@pytest.mark.parametrize("source", ["z", "pi"])
def test_plot_transition_graph(tmp_path, fit, source):
    state, data = fit
    if source == "z":
        fig = viz.plot_transition_graph(state["z"], data["mask"], max_syllables=2,
                                        path=tmp_path / "graph.png")
        num_nodes, num_edges = 2, 2  # both directions between the two most used syllables
    else:
        pi = np.array([[0.8, 0.2, 0.0], [0.1, 0.8, 0.1], [0.5, 0.0, 0.5]])
        fig = viz.plot_transition_graph(pi, path=tmp_path / "graph.png")
        num_nodes, num_edges = 3, 4
    assert_saved(tmp_path / "graph.png")
    (ax,) = fig.axes
    circles = [p for p in ax.patches if isinstance(p, matplotlib.patches.Circle)]
    arrows = [p for p in ax.patches if isinstance(p, matplotlib.patches.FancyArrowPatch)]
    assert (len(circles), len(arrows)) == (num_nodes, num_edges)


def test_plot_transition_graph_rejects_other_inputs():
    with pytest.raises(ValueError, match="transition matrix"):
        viz.plot_transition_graph(np.zeros((2, 3)))


def test_plot_ethogram_from_rows_and_from_recordings(tmp_path, fit):
    state, data = fit
    fig = viz.plot_ethogram(state["z"], data["mask"], names=["a", "b", "c"],
                            path=tmp_path / "ethogram.png")
    assert len(fig.axes) == 2  # the image and its colour bar
    image = fig.axes[0].images[0].get_array()
    assert image.shape == data["mask"].shape
    assert image.mask[1, 100:].all() and not image.mask[0].any()
    np.testing.assert_array_equal(image[0, :NLAGS + 1], state["z"][0, 0])
    assert_saved(tmp_path / "ethogram.png")

    fig = viz.plot_ethogram({"long": np.arange(10) % 3, "short": [0.0, np.nan, 1.0]},
                            path=tmp_path / "ethogram.pdf", fps=10)
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["long", "short"]
    assert_saved(tmp_path / "ethogram.pdf")


@pytest.mark.parametrize("alignment", ["state", "keypoints"])
def test_syllable_trajectories_recover_the_egocentric_templates(fit, alignment):
    state, data = fit
    if alignment == "state":
        aligned = {"centroid": state["v"], "heading": state["h"]}
    else:  # heading from keypoint 0 (front) and 3 (back), centroid the mean keypoint
        aligned = {"anterior": [0], "posterior": [3]}
    trajectories, counts = viz.syllable_trajectories(data["Y"], state["z"], data["mask"],
                                                     window=(0, 4), **aligned)
    assert set(trajectories) == set(TEMPLATES) and counts.min() > 0
    for syllable, template in TEMPLATES.items():
        if alignment == "keypoints":
            template = template - template.mean(axis=0)
            template = template @ rotation_to_axis(template[0] - template[3]).T
        # Runs last at least 8 frames, so the first 4 frames after onset hold the syllable.
        np.testing.assert_allclose(trajectories[syllable],
                                   np.broadcast_to(template, (4, 4, 2)), atol=1e-9)


def test_syllable_trajectories_in_3d_turn_about_the_vertical_axis(fit):
    """2-D keypoints laid in the z-x plane of 3-D ones, with heights along y: aligned about
    y (vertical_axis=1), the trajectories in that plane are the 2-D ones, heights untouched."""
    state, data = fit
    Y2 = np.asarray(data["Y"])
    heights = np.random.default_rng(0).normal(size=Y2.shape[:-1])
    Y3 = np.stack([Y2[..., 1], heights, Y2[..., 0]], axis=-1)
    kwargs = {"anterior": [0], "posterior": [3], "window": (0, 4)}
    flat, counts = viz.syllable_trajectories(Y2, state["z"], data["mask"], **kwargs)
    upright, counts3 = viz.syllable_trajectories(Y3, state["z"], data["mask"], vertical_axis=1,
                                                 **kwargs)
    np.testing.assert_array_equal(counts3, counts)
    for syllable, trajectory in flat.items():
        np.testing.assert_allclose(upright[syllable][..., [2, 0]], trajectory, atol=1e-9)
    tilted, _ = viz.syllable_trajectories(Y3, state["z"], data["mask"], **kwargs)
    assert not np.allclose(tilted[0][..., [2, 0]], flat[0], atol=1e-3)
    fig = viz.plot_syllable_trajectories(Y3, state["z"], data["mask"], window=(3, 6),
                                         anterior=[0], posterior=[3], vertical_axis=1)
    panel = fig.axes[0].collections[0].get_offsets()
    assert np.ptp(np.asarray(panel), axis=0).min() > 0


def rotation_to_axis(direction):
    angle = -np.arctan2(direction[1], direction[0])
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def test_syllable_trajectories_skip_windows_with_masked_frames(fit):
    state, data = fit
    mask = data["mask"].copy()
    _, all_counts = viz.syllable_trajectories(data["Y"], state["z"], mask, window=(3, 5))
    mask[:, :] = 0
    mask[0, :] = 1
    _, row_counts = viz.syllable_trajectories(data["Y"], state["z"], mask, window=(3, 5))
    labels = np.r_[[state["z"][0, 0]] * NLAGS, state["z"][0]]
    onsets = np.flatnonzero(np.diff(labels)) + 1
    onsets = onsets[(onsets >= 3) & (onsets + 5 <= len(labels))]
    np.testing.assert_array_equal(row_counts, np.bincount(labels[onsets], minlength=3))
    assert all_counts.sum() > row_counts.sum()


def test_plot_syllable_trajectories_draws_one_panel_per_syllable(tmp_path, fit):
    state, data = fit
    fig = viz.plot_syllable_trajectories(
        data["Y"], state["z"], data["mask"], centroid=state["v"], heading=state["h"],
        window=(3, 6), max_syllables=2, edges=[(0, 1), (1, 2), (2, 3)],
        path=tmp_path / "trajectories.png")
    assert len(fig.axes) == 2
    assert_saved(tmp_path / "trajectories.png")
    fig = viz.plot_syllable_trajectories(data["Y"], state["z"], data["mask"], window=(3, 6),
                                         path=tmp_path / "trajectories.pdf")
    assert len(fig.axes) == 3
    assert_saved(tmp_path / "trajectories.pdf")
    fig = viz.plot_syllable_trajectories(data["Y"], state["z"], data["mask"], window=(3, 6),
                                         min_instances=10_000)
    assert len(fig.axes) == 1  # a note that no syllable qualifies


def image_references(text, pattern):
    return re.findall(pattern, text)


def report_inputs(state, data):
    """The per-recording results and keypoints `write_report` takes, of a fit without batch."""
    results = results_per_recording(state, data, NLAGS)
    return results, dict(zip(results, data["Y"], strict=True))


def test_write_report_saves_figures_and_references_them(tmp_path, fit):
    state, data = fit
    trace = {"log_joint": np.linspace(-500, -100, 30), "median_duration": np.linspace(3, 9, 30)}
    results, keypoints = report_inputs(state, data)
    report = viz.write_report(tmp_path / "report", results, 4, NLAGS, trace=trace, fps=30,
                              keypoints=keypoints, edges=[(0, 1), (1, 2), (2, 3)])
    folder = tmp_path / "report"
    assert report == os.path.join(folder, "report.md")
    expected = {"progress.png", "usage.png", "durations.png", "transition_graph.png",
                "ethogram.png", "trajectories.png"}
    markdown = open(report).read()
    assert set(image_references(markdown, r"!\[[^\]]*\]\(([^)]+)\)")) == expected
    html = open(folder / "report.html").read()
    assert set(image_references(html, r'<img src="([^"]+)"')) == expected
    for name in expected:
        assert_saved(folder / name)
    assert "| syllables used (any frame) | 3 |" in markdown
    assert "| sweeps | 30 |" in markdown
    assert "median syllable duration (frames)" in markdown


def test_write_report_with_a_batch_and_pdf_figures(tmp_path):
    lengths = {"mouse1": 45, "mouse2": 30}
    rng = np.random.default_rng(1)
    labels = {name: np.repeat(rng.integers(3, size=length // 5 + 1), 5)[:length]
              for name, length in lengths.items()}
    z_rows, mask, (keys, bounds) = batching.batch(labels, seg_length=20, seg_overlap=5)
    batch = Batch({"mask": mask}, keys, bounds, ("a", "b"), np.array([0]), np.array([1]))
    state = {"z": z_rows[:, NLAGS:], "pi": np.full((3, 3), 1 / 3)}
    results = results_per_recording(state, {"mask": mask}, NLAGS, batch=batch)
    report = viz.write_report(tmp_path, results, 3, NLAGS, image_format="pdf")
    markdown = open(report).read()
    expected = {"usage.pdf", "durations.pdf", "transition_graph.pdf", "ethogram.pdf"}
    assert set(image_references(markdown, r"!\[[^\]]*\]\(([^)]+)\)")) == expected
    assert "| recordings | 2 |" in markdown
    html = open(tmp_path / "report.html").read()
    assert set(image_references(html, r'<a href="([^"]+)"')) == expected
    for name in expected:
        assert_saved(tmp_path / name)


def test_write_report_numbers_are_those_of_the_relabelled_rows(tmp_path, fit):
    """The summary of the per-recording results is that of the model's rows `z (N, T - nlags)`
    relabelled by frequency, with their mask: the report's numbers do not depend on whether
    it is drawn from rows or from recordings."""
    state, data = fit
    results, keypoints = report_inputs(state, data)
    report = viz.write_report(tmp_path, results, 4, NLAGS, keypoints=keypoints, fps=30)
    markdown = open(report).read()
    z, _ = relabel_by_frequency(state["z"], data["mask"], 4)
    median = float(np.median(get_durations(z, data["mask"])))
    usage = get_frequencies(z, data["mask"], num_states=4, runlength=False)
    for key, value in [("recordings", "3"), ("frames (unmasked)", str(int(data["mask"].sum()))),
                       ("syllables used (any frame)", str(int((usage > 0).sum()))),
                       ("syllables used (>= 0.5% of frames)", str(int((usage >= 0.005).sum()))),
                       ("median syllable duration (frames)", f"{median:g}"),
                       ("median syllable duration (s)", f"{median / 30:.3g}")]:
        assert f"| {key} | {value} |" in markdown, key
