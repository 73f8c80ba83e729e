"""The verdict of a statistical test of a sampler over several test functions: the
multiple-comparison correction, and what every report has (`passed`, `failures`)."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Verdict", "multiple_comparison"]


def multiple_comparison(p_values, alpha: float, correction: str = "holm") -> np.ndarray:
    """Which hypotheses are rejected at family-wise level `alpha` (Holm or Bonferroni)."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if correction == "bonferroni":
        return p <= alpha / max(m, 1)
    if correction != "holm":
        raise ValueError(f"`correction` must be 'holm' or 'bonferroni'; got {correction!r}.")
    rejected = np.zeros(m, bool)
    for rank, index in enumerate(np.argsort(p, kind="stable")):
        if p[index] > alpha / (m - rank):
            break
        rejected[index] = True
    return rejected


@dataclasses.dataclass(frozen=True, repr=False)
class Verdict:
    """One row per test function (`names`), which of them the corrected test rejects
    (`rejected`), at family-wise level `alpha` with `correction` ("holm" or "bonferroni")."""

    names: tuple[str, ...]
    rejected: np.ndarray
    alpha: float
    correction: str

    @property
    def passed(self) -> bool:
        """True when no test function's difference survives the correction."""
        return not bool(np.any(self.rejected))

    @property
    def failures(self) -> tuple[str, ...]:
        """The names of the rejected test functions."""
        return tuple(n for n, r in zip(self.names, self.rejected, strict=True) if r)

    def _heading(self, test: str, details: str) -> str:
        """`"{test} PASSED: {details}, {correction} at alpha=..."` (or FAILED and why)."""
        verdict = "PASSED" if self.passed else f"FAILED ({', '.join(self.failures)})"
        return f"{test} {verdict}: {details}, {self.correction} at alpha={self.alpha:g}"

    def _name_width(self) -> int:
        return max([len(n) for n in self.names] + [13])


def pyplot():
    """matplotlib's pyplot on the Agg backend (plots of the reports)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("the reports' plots need matplotlib; `pip install matplotlib` to "
                          "draw them.") from error
    return plt
