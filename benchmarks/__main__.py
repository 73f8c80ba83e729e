"""Run the benchmark suites: `python -m benchmarks [suite ...]` (default: all).

Each suite prints the median wall time of its kernels on a fixed workload (float32, the
default JAX device) and, where jax-moseq is importable in the same environment, the same
figure for jax-moseq and the ratio. jax-moseq is never a dependency of moseq: install it by
hand (`pip install jax-moseq`) to compare.
"""

from __future__ import annotations

import argparse
import importlib

import jax  # noqa: I001

import moseq  # noqa: F401  (first: it configures XLA before JAX starts)

SUITES = ("hmm", "kalman", "arhmm", "keypoint_slds", "memory")


def report(name: str, seconds: float | None, **extra) -> None:
    timing = "" if seconds is None else f"{seconds * 1e3:10.2f} ms"
    details = "  ".join(f"{key}={value:.2f}x" if key == "speedup" else f"{key}={value}"
                        for key, value in extra.items())
    print(f"{name:<62} {timing}  {details}".rstrip(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", help=f"any of {', '.join(SUITES)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suites {sorted(unknown)}; choose from {SUITES}")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s)")
    for suite in args.suites or SUITES:
        importlib.import_module(f"benchmarks.{suite}").run(report)


if __name__ == "__main__":
    main()
