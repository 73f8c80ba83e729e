"""Run the benchmark suites: `python -m benchmarks [suite ...] [options]` (default: all).

Each suite prints the median wall time of its kernels on a fixed workload (float32, the
default JAX device) and, where jax-moseq is importable in the same environment, the same
figure for jax-moseq and the ratio. jax-moseq is never a dependency of moseq: install it by
hand (`pip install jax-moseq`) to compare, or in a separate environment named with
`--jax-moseq-python` (first_sweep, scale). Options after the suites go to the suites that
take them (`python -m benchmarks scale --sizes 1000000 10000000`; `python -m benchmarks.scale
-h` lists them).
"""

from __future__ import annotations

import argparse
import importlib
import inspect

import jax  # noqa: I001

import moseq  # noqa: F401  (first: it configures XLA before JAX starts)

SUITES = ("hmm", "kalman", "arhmm", "keypoint_slds", "first_sweep", "scale")
DEFAULT = SUITES[:5]  # `scale` fits up to millions of frames: only when asked


def report(name: str, seconds: float | None, **extra) -> None:
    timing = "" if seconds is None else f"{seconds * 1e3:10.2f} ms"
    details = "  ".join(f"{key}={value:.2f}x" if key == "speedup" else f"{key}={value}"
                        for key, value in extra.items())
    print(f"{name:<62} {timing}  {details}".rstrip(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*",
                        help=f"any of {', '.join(SUITES)} (default: all but scale)")
    parser.add_argument("--jax-moseq-python", metavar="PYTHON",
                        help="first_sweep, scale: a Python with jax-moseq installed (e.g. a "
                        "separate venv's bin/python) to compare against; default: this one")
    args, options = parser.parse_known_args()
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suites {sorted(unknown)}; choose from {SUITES}")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s)")
    for suite in args.suites or DEFAULT:
        run = importlib.import_module(f"benchmarks.{suite}").run
        parameters = inspect.signature(run).parameters
        kwargs = {"jax_moseq_python": args.jax_moseq_python} if (
            "jax_moseq_python" in parameters) else {}
        if "argv" in parameters:
            kwargs["argv"] = options
        elif options:
            parser.error(f"suite {suite!r} takes no options; got {options}")
        run(report, **kwargs)


if __name__ == "__main__":
    main()
