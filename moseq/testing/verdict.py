"""The verdict of a statistical test of a sampler over several test functions: the
multiple-comparison correction, and what every report has (`outcome`, `passed`, `failures`,
`reason`).

A test function's row ends in one of three outcomes: "pass", "fail" (its difference survives
the correction), or "inconclusive" (the test could not judge it: too few effective draws
for its standard error to be trusted; never a failure, run the test longer). The report's
outcome is "fail" if any row fails, else "inconclusive" if any row is, else "pass".
"""

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
    (`rejected`), at family-wise level `alpha` with `correction` ("holm" or "bonferroni"),
    and which it could not judge (`inconclusive`, default none; a row is never both), with
    the remedy (`advice`)."""

    names: tuple[str, ...]
    rejected: np.ndarray
    alpha: float
    correction: str
    inconclusive: np.ndarray | None = dataclasses.field(default=None, kw_only=True)
    advice: str = dataclasses.field(default="", kw_only=True)

    def __post_init__(self):
        undecided = np.zeros(len(self.names), bool) if self.inconclusive is None else (
            np.asarray(self.inconclusive, bool))
        if np.any(undecided & np.asarray(self.rejected, bool)):
            raise ValueError("a test function cannot be both rejected and inconclusive.")
        object.__setattr__(self, "inconclusive", undecided)

    @property
    def outcomes(self) -> tuple[str, ...]:
        """Each row's outcome: "pass", "fail" or "inconclusive"."""
        return tuple("fail" if r else "inconclusive" if u else "pass"
                     for r, u in zip(self.rejected, self.inconclusive, strict=True))

    @property
    def outcome(self) -> str:
        """"fail" if any row fails, else "inconclusive" if any row is, else "pass"."""
        outcomes = self.outcomes
        return next((o for o in ("fail", "inconclusive") if o in outcomes), "pass")

    @property
    def passed(self) -> bool:
        """True when every row passes: no difference survives the correction and none was
        left undecided."""
        return self.outcome == "pass"

    @property
    def failures(self) -> tuple[str, ...]:
        """The names of the rejected test functions."""
        return tuple(n for n, r in zip(self.names, self.rejected, strict=True) if r)

    @property
    def undecided(self) -> tuple[str, ...]:
        """The names of the test functions the test could not judge."""
        return tuple(n for n, u in zip(self.names, self.inconclusive, strict=True) if u)

    @property
    def reason(self) -> str:
        """Why the outcome: the rejected functions, or the undecided ones and the remedy
        ("" when the test passed)."""
        if self.failures:
            return f"rejected: {', '.join(self.failures)}"
        if self.undecided:
            advice = f"; {self.advice}" if self.advice else ""
            return f"undecided: {', '.join(self.undecided)}{advice}"
        return ""

    def _heading(self, test: str, details: str) -> str:
        """`"{test} PASSED: {details}, {correction} at alpha=..."` (or FAILED / INCONCLUSIVE
        and why)."""
        verdict = {"pass": "PASSED", "fail": "FAILED", "inconclusive": "INCONCLUSIVE"}[
            self.outcome]
        if self.reason:
            verdict = f"{verdict} ({self.reason})"
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
