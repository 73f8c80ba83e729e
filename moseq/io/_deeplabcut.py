"""DeepLabCut predictions: `.csv` (read with the csv module and NumPy) and `.h5` (h5py).

A CSV cell is a number, or empty (or `nan`) for a missing point, as pandas writes them; any
other text is refused with its line and column, never read as a missing point.

Both hold one column per (scorer, [individual,] bodypart, coordinate), the coordinates being
x, y[, z][, likelihood]; a 4-level header means a multi-animal project. The `.h5` is a pandas
"table" written by PyTables: the values are the `values_block_*` fields of the compound
dataset `<key>/table` (key `df_with_missing`), and each block's column labels are a pickled
list of tuples in the attribute `values_block_*_kind`, read here without pandas or PyTables.
"""

from __future__ import annotations

import csv
import io
import math
import pickle
import warnings
from pathlib import Path

import h5py
import numpy as np

from moseq.io._recording import Animal, numbers

SPATIAL_COORDS = ("x", "y", "z")
# maDLC files put the bodyparts that appear once per video under this pseudo-individual.
UNIQUE_BODYPARTS = "single"


def read_deeplabcut(path: Path) -> list[Animal]:
    """Every animal of a DeepLabCut `.csv` or `.h5` predictions file."""
    if path.suffix.lower() == ".csv":
        labels, values = _read_csv(path)
    else:
        labels, values = _read_h5(path)
    return _split_columns(labels, values, path)


def _read_csv(path: Path) -> tuple[list[tuple[str, ...]], np.ndarray]:
    with open(path, newline="") as file:
        header = []
        for row in csv.reader(file):
            header.append(row)
            if row[:1] == ["coords"] or len(header) == 4:
                break
    if not header or header[-1][:1] != ["coords"]:
        raise ValueError(
            f"{path} is not a DeepLabCut predictions CSV: its header rows should start with "
            "scorer, [individuals,] bodyparts and coords."
        )
    if len({len(row) for row in header}) != 1:
        raise ValueError(f"{path}: the header rows of this DeepLabCut CSV have different "
                         f"lengths ({[len(row) for row in header]}); repair the header.")
    labels = list(zip(*(row[1:] for row in header), strict=True))
    try:  # NumPy's C parser, for files with a number in every cell
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a file without rows: said below
            values = np.loadtxt(path, delimiter=",", skiprows=len(header), comments=None,
                                ndmin=2)[:, 1:]
    except ValueError:
        values = None
    if values is None or values.shape[1] != len(labels) or np.isinf(values).any():
        values = _read_csv_cells(path, len(header), labels)
    return labels, values


def _read_csv_cells(path: Path, header_rows: int, labels) -> np.ndarray:
    """The values after the frame index, row by row: an empty cell (how pandas writes a
    missing value) or `nan` is NaN; anything else that is not a finite number is refused with
    its line and column."""
    with open(path, newline="") as file:
        rows = csv.reader(file)
        for _ in range(header_rows):
            next(rows)
        numbered = [(rows.line_num, row[1:]) for row in rows if row]
    values = np.empty((len(numbered), len(labels)))
    for index, (line, cells) in enumerate(numbered):
        if len(cells) != len(labels):
            raise ValueError(
                f"{path}: cannot parse its rows as numbers: line {line} has {len(cells)} "
                f"values after the frame index, but its header labels {len(labels)} columns."
            )
        try:
            values[index] = [float(cell) if cell.strip() else math.nan for cell in cells]
        except ValueError:
            values[index] = math.inf  # the first cell that is no number is named below
    for index, column in np.argwhere(np.isinf(values)):
        line, cells = numbered[index]
        cell = cells[column]
        if not cell.strip() or (_is_number(cell) and not math.isinf(float(cell))):
            continue
        raise ValueError(
            f"{path}, line {line}, column {column + 2} ({'/'.join(labels[column][1:])}): "
            f"{cell!r} is not a finite number. DeepLabCut writes a number in every cell, or "
            "leaves it empty for a missing point; repair the cell or re-export the predictions."
        )
    return values


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


class _LiteralUnpickler(pickle.Unpickler):
    """Unpickles lists, tuples and strings only: never imports or calls anything."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a DLC file")


def _read_h5(path: Path) -> tuple[list[tuple[str, ...]], np.ndarray]:
    with h5py.File(path, "r") as file:
        if "df_with_missing/table" not in file:
            raise ValueError(
                f"{path} holds no `df_with_missing/table`: it is not a DeepLabCut .h5 "
                "written in pandas' table format."
            )
        table = file["df_with_missing/table"]
        blocks = [name for name in table.dtype.names if name.startswith("values_block_")]
        labels = [
            tuple(label)
            for block in blocks
            for label in _unpickle_literals(table.attrs[f"{block}_kind"])
        ]
        rows = table[()]
    values = np.concatenate([rows[block].reshape(len(rows), -1) for block in blocks], axis=1)
    return labels, numbers(values, "values", path)


def _unpickle_literals(attribute) -> list:
    return _LiteralUnpickler(io.BytesIO(bytes(attribute))).load()


def _split_columns(labels, values, path: Path) -> list[Animal]:
    """Group (scorer, [individual,] bodypart, coord) columns into one `Animal` per individual."""
    if not labels or len({len(label) for label in labels}) != 1 or len(labels[0]) not in (3, 4):
        raise ValueError(
            f"{path}: DeepLabCut columns must be labelled (scorer, [individual,] bodypart, "
            f"coord); got {labels[:3]}..."
        )
    columns = {label[1:]: index for index, label in enumerate(labels)}
    individuals = [None]
    if len(labels[0]) == 4:
        individuals = list(dict.fromkeys(label[1] for label in labels))
    animals = []
    for individual in individuals:
        prefix = () if individual is None else (individual,)
        bodyparts = list(dict.fromkeys(label[-2] for label in labels if label[1:-2] == prefix))

        def gather(coord, prefix=prefix, bodyparts=bodyparts):
            """`(T, K)` values of one coordinate of every bodypart of this individual."""
            return values[:, [columns[(*prefix, part, coord)] for part in bodyparts]]

        coords = [c for c in SPATIAL_COORDS if (*prefix, bodyparts[0], c) in columns]
        if coords not in (["x", "y"], ["x", "y", "z"]):
            raise ValueError(
                f"{path}: bodypart {bodyparts[0]!r} has coordinates {coords}; "
                "expected x, y or x, y, z."
            )
        has_likelihood = (*prefix, bodyparts[0], "likelihood") in columns
        animals.append(
            Animal(
                individual=individual,
                Y=np.stack([gather(coord) for coord in coords], axis=-1),
                confidence=gather("likelihood") if has_likelihood else None,
                keypoint_names=bodyparts,
                fps=None,
            )
        )
    return animals
