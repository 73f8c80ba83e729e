"""Figures of a fit: progress, syllable usage and durations, transition graph, ethogram, and
the average pose trajectory of each syllable; `write_report` puts them in one report.

Every plotting function builds a `matplotlib.figure.Figure` without pyplot (no display or
interactive backend is needed), returns it, and saves it to `path` when given (the format
follows the extension: .png, .pdf, .svg, ...).

Syllables `z (N, T - nlags)` and frame masks `mask (N, T)` are aligned at their ends, as
everywhere in moseq (`z[:, i]` labels frame `i + nlags`); `nlags` is read from the shapes.
`write_report` draws the exported per-recording results (`moseq.export.results_per_recording`),
whose syllables carry the model's numbering (`syllable_order`); number `z` the same way
(`numpy.argsort(syllable_order)[z]`) before plotting it, so that the labels agree.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence

import matplotlib.colors
import numpy as np
from jaxtyping import Float, Int
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch

from moseq.ops import count_transitions, get_durations, get_frequencies
from moseq.ops.geometry import align_egocentric, horizontal_axes, inverse_rigid_transform
from moseq.ops.labels import pad_to_frames

Path = str | os.PathLike | None


def plot_progress(trace: Mapping[str, np.ndarray], durations=None, path: Path = None) -> Figure:
    """Log joint density per sweep and, when known, the median syllable duration per sweep.

    Args:
        trace: the scheduler's trace, `{"log_joint": (S,), ...}`; a `"median_duration"` entry
            (e.g. recorded as a summary) is plotted too.
        durations: `(S,)` median durations (frames) per sweep; overrides the trace's.
    """
    log_joint = np.asarray(trace["log_joint"])
    if durations is None:
        durations = trace.get("median_duration")
    panels = 1 if durations is None else 2
    fig = Figure(figsize=(5 * panels, 3.5), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    axes[0].plot(np.arange(1, len(log_joint) + 1), log_joint)
    axes[0].set(xlabel="sweep", ylabel="log joint density", title="Log joint")
    if durations is not None:
        durations = np.asarray(durations)
        axes[1].plot(np.arange(1, len(durations) + 1), durations)
        axes[1].set(xlabel="sweep", ylabel="frames", title="Median syllable duration")
    return _finish(fig, path)


def plot_syllable_usage(z: Int[np.ndarray, "N t"], mask: Float[np.ndarray, "N T"] | None = None,
                        num_states: int | None = None, runlength: bool = True,
                        path: Path = None) -> Figure:
    """Bar chart of the used syllables' frequencies, most used first.

    `runlength=True` counts each run of a syllable once (keypoint-moseq's usage); False
    counts frames.
    """
    frequencies = get_frequencies(z, mask, num_states=num_states, runlength=runlength)
    order = np.argsort(-frequencies, kind="stable")
    order = order[frequencies[order] > 0]
    fig = Figure(figsize=(max(4.0, 0.18 * len(order) + 1.5), 3.5), layout="constrained")
    ax = fig.subplots()
    ax.bar(np.arange(len(order)), frequencies[order], color="tab:blue")
    if len(order) <= 60:
        ax.set_xticks(np.arange(len(order)), [str(state) for state in order], fontsize=7)
    ax.set(xlabel="syllable", ylabel="fraction of " + ("runs" if runlength else "frames"),
           title=f"Syllable usage ({len(order)} used)")
    return _finish(fig, path)


def plot_durations(z: Int[np.ndarray, "N t"], mask: Float[np.ndarray, "N T"] | None = None,
                   fps: float | None = None, path: Path = None) -> Figure:
    """Histogram of syllable durations (runs), in frames, or in seconds when `fps` is given."""
    durations = get_durations(z, mask).astype(float)
    unit = "frames"
    if fps is not None:
        durations, unit = durations / fps, "s"
    median = np.median(durations)
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.subplots()
    ax.hist(durations, bins=min(50, max(1, len(np.unique(durations)))), color="tab:blue")
    ax.axvline(median, color="k", linestyle="--", label=f"median {median:.3g} {unit}")
    ax.legend(frameon=False)
    ax.set(xlabel=f"duration ({unit})", ylabel="runs", title="Syllable durations")
    return _finish(fig, path)


def plot_transition_graph(z_or_pi, mask: Float[np.ndarray, "N T"] | None = None,
                          num_states: int | None = None, max_syllables: int = 10,
                          min_probability: float = 0.02, path: Path = None) -> Figure:
    """Transitions between the most used syllables, as a graph on a circle.

    Nodes are the `max_syllables` most used syllables, with area proportional to usage; an
    arrow i -> j has width proportional to P(next syllable is j | leaving i), self-transitions
    excluded, and is drawn when that probability is at least `min_probability`.

    Args:
        z_or_pi: integer syllables `z (N, t)` (transitions are counted where the mask allows,
            usage counts runs), or a float transition matrix `pi (K, K)` (usage is its
            stationary distribution).
        mask: `(N, T)` frame mask for `z`.
        num_states: K for `z`; default `max(z) + 1`.
    """
    values = np.asarray(z_or_pi)
    if np.issubdtype(values.dtype, np.integer):
        num_states = int(values.max()) + 1 if num_states is None else num_states
        if mask is None:
            mask = np.ones(values.shape)
        transitions = np.asarray(count_transitions(num_states, values, mask), dtype=float)
        usage = get_frequencies(values, mask, num_states=num_states)
    elif values.ndim == 2 and values.shape[0] == values.shape[1]:
        transitions = values.astype(float)
        usage = _stationary_distribution(transitions)
    else:
        raise ValueError(
            "`z_or_pi` must be integer syllables (N, t) or a float transition matrix (K, K); "
            f"got dtype {values.dtype} and shape {values.shape}."
        )
    nodes = np.argsort(-usage, kind="stable")[:max_syllables]
    nodes = nodes[usage[nodes] > 0]
    leaving = transitions[np.ix_(nodes, nodes)] * (1 - np.eye(len(nodes)))
    # Normalise over all destinations, not only the drawn ones.
    totals = transitions[nodes].sum(axis=1) - transitions[nodes, nodes]
    probability = leaving / np.where(totals > 0, totals, 1)[:, None]

    angles = np.pi / 2 - 2 * np.pi * np.arange(len(nodes)) / max(len(nodes), 1)
    positions = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    radii = 0.05 + 0.12 * np.sqrt(usage[nodes] / usage[nodes].max())
    colors = _syllable_colors(int(nodes.max()) + 1 if len(nodes) else 1)
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    largest = probability.max() if probability.size and probability.max() > 0 else 1.0
    for i, j in zip(*np.nonzero(probability >= max(min_probability, 1e-12)), strict=True):
        # Start and end on the nodes' rims (data units), so arrow heads stay visible.
        direction = (positions[j] - positions[i]) / np.linalg.norm(positions[j] - positions[i])
        ax.add_patch(FancyArrowPatch(
            positions[i] + radii[i] * direction, positions[j] - radii[j] * direction,
            arrowstyle="-|>", mutation_scale=8, connectionstyle="arc3,rad=0.15", shrinkA=0,
            shrinkB=0, linewidth=0.3 + 5 * probability[i, j] / largest, color="0.35",
            alpha=0.8))
    for node, position, radius in zip(nodes, positions, radii, strict=True):
        ax.add_patch(Circle(position, radius, color=colors(node), zorder=3))
        ax.text(*position, str(node), ha="center", va="center", fontsize=8, zorder=4)
    ax.set(xlim=(-1.35, 1.35), ylim=(-1.35, 1.35), aspect="equal",
           title=f"Transitions between the {len(nodes)} most used syllables")
    ax.axis("off")
    return _finish(fig, path)


def plot_ethogram(z, mask: Float[np.ndarray, "N T"] | None = None,
                  names: Sequence[str] | None = None, num_states: int | None = None,
                  fps: float | None = None, path: Path = None) -> Figure:
    """Syllables over time, one row per recording; masked frames are blank.

    Args:
        z: syllables `(N, t)` with `mask (N, T)` (the first T - t frames repeat the first
            syllable), or `{name: (T_name,)}` per recording (NaN = blank; no mask).
        names: row labels for an array `z` (default: row numbers).
        num_states: colours are assigned for labels 0 .. num_states - 1.
        fps: frames per second, for a time axis in seconds.
    """
    if isinstance(z, Mapping):
        if mask is not None:
            raise ValueError("`mask` applies only to an array `z`; mask each recording instead.")
        names = list(z)
        rows = [np.asarray(row, dtype=float) for row in z.values()]
        image = np.full((len(rows), max(len(row) for row in rows)), np.nan)
        for index, row in enumerate(rows):
            image[index, : len(row)] = row
    else:
        z = np.asarray(z)
        mask = np.ones(z.shape) if mask is None else np.asarray(mask)
        image = pad_to_frames(z, mask.shape[1] - z.shape[1]).astype(float)
        image[mask <= 0] = np.nan
        names = [str(row) for row in range(len(z))] if names is None else list(names)
    if num_states is None:
        num_states = int(np.nanmax(image)) + 1
    colors = _syllable_colors(num_states).with_extremes(bad="white")
    scale = 1.0 if fps is None else 1.0 / fps
    fig = Figure(figsize=(9, 0.9 + 0.3 * len(image)), layout="constrained")
    ax = fig.subplots()
    shown = ax.imshow(image, aspect="auto", interpolation="nearest", cmap=colors,
                      vmin=-0.5, vmax=num_states - 0.5,
                      extent=(0, image.shape[1] * scale, len(image) - 0.5, -0.5))
    ax.set_yticks(np.arange(len(image)), names, fontsize=7)
    ax.set(xlabel="time (s)" if fps else "frame", title="Ethogram")
    fig.colorbar(shown, ax=ax, label="syllable", fraction=0.03, pad=0.01)
    return _finish(fig, path)


def syllable_trajectories(
    Y: Float[np.ndarray, "N T k d"], z: Int[np.ndarray, "N t"], mask: Float[np.ndarray, "N T"],
    centroid: Float[np.ndarray, "N T d"] | None = None,
    heading: Float[np.ndarray, "N T"] | None = None,
    anterior: Sequence[int] | None = None, posterior: Sequence[int] | None = None,
    window: tuple[int, int] = (5, 15), vertical_axis: int = 2,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Mean egocentric keypoint trajectory around the onsets of each syllable.

    For every onset of a syllable (a frame where the label changes) whose whole window, from
    `window[0]` frames before to `window[1] - 1` frames after it, is unmasked, the keypoints
    of the window are moved into the animal's frame at onset, `R(-h)(Y - v)` with the onset's
    centroid v and heading h; they are then averaged over the onsets of each syllable.

    Args:
        Y: keypoints `(N, T, k, d)`.
        z, mask: syllables `(N, t)` and frame mask `(N, T)`.
        centroid, heading: `v (N, T, d)` and `h (N, T)` for the alignment (e.g. the keypoint
            model's `state["v"]`, `state["h"]`). Without them, v is the mean keypoint and h
            comes from the `anterior` and `posterior` keypoint indices, or is 0.
        window: frames `(before, after)` onset.
        vertical_axis: 3-D keypoints: the axis the heading turns about (as in the model).

    Returns:
        `(trajectories, counts)`: `{syllable: (before + after, k, d)}` for syllables with at
        least one complete window, and `counts (max label + 1,)` the complete windows of each.
    """
    Y, z, mask = np.asarray(Y), np.asarray(z), np.asarray(mask)
    before, after = window
    num_rows, num_frames = mask.shape
    labels = pad_to_frames(z, num_frames - z.shape[1])
    if centroid is None or heading is None:
        if anterior is not None and posterior is not None:
            _, centroid, heading = align_egocentric(Y, tuple(anterior), tuple(posterior),
                                                    vertical_axis)
        else:
            centroid, heading = Y.mean(axis=-2), np.zeros((num_rows, num_frames))
    centroid, heading = np.asarray(centroid), np.asarray(heading)

    changed = np.zeros(labels.shape, dtype=bool)
    changed[:, 1:] = labels[:, 1:] != labels[:, :-1]
    changed[:, :before] = False
    changed[:, max(num_frames - after + 1, 0):] = False
    rows, onsets = np.nonzero(changed)
    frames = onsets[:, None] + np.arange(-before, after)
    complete = (mask[rows[:, None], frames] > 0).all(axis=1)
    rows, onsets, frames = rows[complete], onsets[complete], frames[complete]
    poses = np.asarray(inverse_rigid_transform(
        Y[rows[:, None], frames], centroid[rows, onsets][:, None], heading[rows, onsets][:, None],
        vertical_axis))
    onset_labels = labels[rows, onsets]
    counts = np.bincount(onset_labels, minlength=int(labels.max()) + 1)
    trajectories = {int(syllable): poses[onset_labels == syllable].mean(axis=0)
                    for syllable in np.flatnonzero(counts)}
    return trajectories, counts


def plot_syllable_trajectories(
    Y: Float[np.ndarray, "N T k d"], z: Int[np.ndarray, "N t"], mask: Float[np.ndarray, "N T"],
    centroid: Float[np.ndarray, "N T d"] | None = None,
    heading: Float[np.ndarray, "N T"] | None = None,
    anterior: Sequence[int] | None = None, posterior: Sequence[int] | None = None,
    window: tuple[int, int] = (5, 15), max_syllables: int = 12, min_instances: int = 3,
    edges: Sequence[tuple[int, int]] = (), vertical_axis: int = 2, path: Path = None,
) -> Figure:
    """Average egocentric pose trajectory of each syllable, one small panel per syllable.

    The trajectories are those of `syllable_trajectories` (same arguments). Each panel shows
    the mean pose at every frame of the window, seen from above (in 2-D the x-y plane, in 3-D
    the plane normal to `vertical_axis`), from pale (before onset) to dark (end), the onset
    pose emphasised, and each keypoint's path in grey; the animal faces the plane's first
    axis at onset.

    Args:
        max_syllables: draw at most this many syllables, those with most onsets first.
        min_instances: skip syllables with fewer complete windows.
        edges: pairs of keypoint indices to join with lines.
    """
    before, after = window
    trajectories, counts = syllable_trajectories(Y, z, mask, centroid, heading, anterior,
                                                 posterior, window, vertical_axis)
    plane = [0, 1] if np.shape(Y)[-1] == 2 else list(horizontal_axes(3, vertical_axis))
    syllables = np.argsort(-counts, kind="stable")
    syllables = syllables[counts[syllables] >= max(min_instances, 1)][:max_syllables]
    columns = int(min(4, max(len(syllables), 1)))
    grid_rows = int(np.ceil(max(len(syllables), 1) / columns))
    fig = Figure(figsize=(2.4 * columns, 2.4 * grid_rows + 0.4), layout="constrained")
    axes = fig.subplots(grid_rows, columns, squeeze=False).ravel()
    for ax in axes[max(len(syllables), 1):]:
        ax.remove()
    if len(syllables) == 0:
        axes[0].text(0.5, 0.5, f"no syllable has {min_instances} onsets with\n"
                     f"{before} + {after} unmasked frames", ha="center", va="center")
        axes[0].axis("off")
        return _finish(fig, path)

    shades = matplotlib.colormaps["viridis"](np.linspace(0.15, 0.95, before + after))
    for ax, syllable in zip(axes, syllables, strict=False):
        mean_pose = trajectories[int(syllable)][..., plane]
        for keypoint in range(mean_pose.shape[1]):
            ax.plot(*mean_pose[:, keypoint].T, color="0.75", linewidth=0.6)
        for offset, (pose, shade) in enumerate(zip(mean_pose, shades, strict=True)):
            weight = 1.0 if offset == before else 0.45
            for start, end in edges:
                ax.plot(*pose[[start, end]].T, color=shade, linewidth=weight * 1.6,
                        alpha=weight)
            ax.scatter(*pose.T, s=weight * 8, color=shade, alpha=weight, linewidths=0)
        ax.set_title(f"syllable {syllable} (n={counts[syllable]})", fontsize=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Mean pose from {before} frames before to {after - 1} after onset "
                 "(heading along the first horizontal axis)", fontsize=9)
    return _finish(fig, path)


def write_report(folder: str | os.PathLike, results: Mapping[str, Mapping[str, np.ndarray]],
                 num_states: int, nlags: int, *, trace: Mapping[str, np.ndarray] | None = None,
                 fps: float | None = None, keypoints: Mapping[str, np.ndarray] | None = None,
                 edges: Sequence[tuple[int, int]] = (), vertical_axis: int = 2,
                 image_format: str = "png", min_frequency: float = 0.005) -> str:
    """Save the figures of a fit and a report that shows them, `report.md` and `report.html`.

    Figures: progress (when `trace` is given), usage, durations, transition graph, ethogram
    (one row per recording) and, with `keypoints`, the syllables' mean pose trajectories
    (aligned with the results' centroid and heading when present).

    Args:
        folder: where the report and images go (created if needed).
        results: `{recording: table}` from `moseq.export.results_per_recording` (syllables
            relabelled by frequency, 0 = most used); uses `frame`, `syllable` and, for the
            trajectories, `centroid` and `heading`.
        num_states: the model's number of states.
        nlags: the AR order; the first `nlags` frames of a recording only repeat its first
            syllable, so usage, durations and transitions leave them out.
        trace: the scheduler's trace (`{"log_joint": (S,), ...}`), or None.
        fps: frames per second, for durations in seconds.
        keypoints: `{recording: (T_name, k, d)}` keypoints, e.g.
            `moseq.io.unbatch(batch.data["Y"], batch)`, for the trajectory figure.
        edges: keypoint index pairs for the trajectory plots.
        vertical_axis: 3-D keypoints: the axis the heading turns about (the model's).
        image_format: "png", "pdf" or "svg" (the HTML report shows png and svg inline).
        min_frequency: usage (fraction of frames) above which a syllable counts as "used" in
            the summary.

    Returns:
        The path of `report.md`.
    """
    os.makedirs(folder, exist_ok=True)
    tables, frames = list(results.values()), [table["frame"] for table in results.values()]
    # A recording's frames: its keypoints', else up to its last kept frame.
    lengths = [len(keypoints[name]) if keypoints is not None else
               int(kept[-1]) + 1 if len(kept) else 0
               for name, kept in zip(results, frames, strict=True)]
    num_frames = max(lengths, default=0)
    labels = _on_frames([table["syllable"] for table in tables], frames, num_frames)
    mask = _on_frames([np.ones(len(kept)) for kept in frames], frames, num_frames)
    z = labels[:, nlags:]
    per_recording = {name: np.where(kept > 0, row, np.nan)[:length] for name, row, kept, length
                     in zip(results, labels, mask, lengths, strict=True)}

    figures = []

    def add(name: str, caption: str, fig: Figure) -> None:
        filename = f"{name}.{image_format}"
        _finish(fig, os.path.join(folder, filename))
        figures.append((filename, caption))

    if trace is not None:
        tracked = " and median syllable duration" if "median_duration" in trace else ""
        add("progress", f"Fitting progress: log joint density{tracked} per sweep.",
            plot_progress(trace))
    add("usage", "Syllable usage (fraction of runs), most used first.",
        plot_syllable_usage(z, mask, num_states=num_states))
    add("durations", "Distribution of syllable durations.", plot_durations(z, mask, fps=fps))
    add("transition_graph", "Transitions between the most used syllables.",
        plot_transition_graph(z, mask, num_states=num_states))
    add("ethogram", "Syllables over time in each recording (blank: masked frames).",
        plot_ethogram(per_recording, num_states=num_states, fps=fps))
    if keypoints is not None:
        Y = _on_frames([keypoints[name] for name in results],
                       [np.arange(length) for length in lengths], num_frames)
        aligned = {field: _on_frames([table[field] for table in tables], frames, num_frames)
                   for field in ("centroid", "heading") if all(field in t for t in tables)}
        add("trajectories", "Average egocentric pose trajectory around each syllable's onset.",
            plot_syllable_trajectories(Y, labels, mask, edges=edges,
                                       vertical_axis=vertical_axis, **aligned))

    frame_usage = get_frequencies(z, mask, num_states=num_states, runlength=False)
    median_duration = float(np.median(get_durations(z, mask)))
    summary = [
        ("recordings", str(len(per_recording))),
        ("frames (unmasked)", str(int((mask > 0).sum()))),
        ("syllables (states in the model)", str(num_states)),
        ("syllables used (any frame)", str(int((frame_usage > 0).sum()))),
        (f"syllables used (>= {min_frequency:.1%} of frames)",
         str(int((frame_usage >= min_frequency).sum()))),
        ("median syllable duration (frames)", f"{median_duration:g}"),
    ]
    if fps is not None:
        summary.append(("median syllable duration (s)", f"{median_duration / fps:.3g}"))
    if trace is not None:
        log_joint = np.asarray(trace["log_joint"])
        summary += [("sweeps", str(len(log_joint))),
                    ("final log joint density", f"{float(log_joint[-1]):.6g}")]

    markdown = ["# MoSeq fit report", "", "| quantity | value |", "| --- | --- |"]
    markdown += [f"| {key} | {value} |" for key, value in summary]
    for filename, caption in figures:
        markdown += ["", f"## {os.path.splitext(filename)[0].replace('_', ' ')}", "", caption,
                     "", f"![{caption}]({filename})"]
    report = os.path.join(folder, "report.md")
    with open(report, "w") as file:
        file.write("\n".join(markdown) + "\n")

    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                   for k, v in summary)
    sections = "".join(_html_section(filename, caption) for filename, caption in figures)
    with open(os.path.join(folder, "report.html"), "w") as file:
        file.write("<!DOCTYPE html><html><head><meta charset='utf-8'><title>MoSeq fit report"
                   "</title></head><body><h1>MoSeq fit report</h1><table>"
                   f"{rows}</table>{sections}</body></html>\n")
    return report


def _html_section(filename: str, caption: str) -> str:
    """A heading, the caption, and the image inline (png, svg) or as a link (pdf)."""
    title = os.path.splitext(filename)[0].replace("_", " ")
    source, caption = html.escape(filename), html.escape(caption)
    if filename.endswith((".png", ".svg")):
        figure = f'<img src="{source}" alt="{caption}" style="max-width:100%">'
    else:
        figure = f'<a href="{source}">{source}</a>'
    return f"<h2>{html.escape(title)}</h2><p>{caption}</p>{figure}"


def _on_frames(values: Sequence[np.ndarray], frames: Sequence[np.ndarray], num_frames: int
               ) -> np.ndarray:
    """One row per recording, `values[r] (len(frames[r]), ...)` at frames `frames[r]` of row
    r and 0 elsewhere: `(R, num_frames, ...)`."""
    first = np.asarray(values[0])
    rows = np.zeros((len(values), num_frames, *first.shape[1:]), dtype=first.dtype)
    for row, (value, where) in enumerate(zip(values, frames, strict=True)):
        rows[row, where] = value
    return rows


def _finish(fig: Figure, path: Path) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _syllable_colors(num_states: int) -> matplotlib.colors.ListedColormap:
    """One colour per syllable label, cycling through tab20."""
    palette = matplotlib.colormaps["tab20"].colors
    return matplotlib.colors.ListedColormap([palette[i % 20] for i in range(max(num_states, 1))])


def _stationary_distribution(pi: np.ndarray) -> np.ndarray:
    """The left eigenvector of `pi` for eigenvalue 1, normalised to sum to 1."""
    values, vectors = np.linalg.eig(pi.T)
    vector = np.abs(np.real(vectors[:, np.argmin(np.abs(values - 1))]))
    return vector / vector.sum()
