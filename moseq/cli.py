"""The `moseq` command (also `python -m moseq`).

    moseq init-project PROJECT --data FILES... --anterior nose --posterior tailbase
                       [--keypoints NAMES...]
    moseq fit PROJECT [--resume]         (or a config file, or data files with --anterior ...)
                      [--coordinator HOST:PORT --num-processes N --process-id I]
    moseq apply PROJECT NEW_DATA... [--output DIR] [--keypoints NAMES]
    moseq demo

See `moseq.pipeline` for the project folder and its files.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from moseq import pipeline
from moseq.core import NumericalFailure
from moseq.io import DataWarning

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_EXAMPLES = """examples:
  moseq init-project my_project --data videos/ --anterior nose --posterior tailbase
  moseq fit my_project                   # writes checkpoint.npz, model.npz, results.h5, csv/,
                                         # report/ into my_project
  moseq fit my_project --resume          # after an interruption: the same chain, continued
  moseq apply my_project new_videos/ --output new_results
"""


def _parse_set(items: Sequence[str]) -> dict[str, dict]:
    """`["model.num_states=20", ...]` -> `{"model": {"num_states": 20}}` (values read as TOML
    values, else as strings)."""
    sections: dict[str, dict] = {}
    for item in items:
        key, sep, text = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise pipeline.ConfigError(f"--set takes SECTION.KEY=VALUE (e.g. "
                                       f"model.num_states=20); got {item!r}.")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        sections.setdefault(section, {})[name] = value
    return sections


def _parse_keypoints(text: str | None):
    """`"a,b,c"` -> list; `"a=x,b=y"` -> {name in file: model name}."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if all("=" in item for item in items):
        return dict(tuple(part.strip() for part in item.split("=", 1)) for item in items)
    if any("=" in item for item in items):
        raise ValueError(f"--keypoints is either NAME,NAME,... or FILE_NAME=MODEL_NAME,...; got "
                         f"{text!r}.")
    return items


_NO_CACHE_HELP = ("compile afresh, without the persistent compilation cache (default: "
                  "fitting.compile_cache)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moseq", description="Segment pose-tracking data into behavioural syllables "
        "with a keypoint-SLDS fitted by blocked Gibbs sampling.", epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser(
        "init-project", help="create a project folder with config.toml",
        description="Create PROJECT/config.toml with every option written out and commented.")
    init.add_argument("project", metavar="PROJECT")
    init.add_argument("--data", nargs="+", required=True, metavar="PATH",
                      help="pose-tracking files or folders")
    init.add_argument("--anterior", nargs="+", required=True, metavar="KEYPOINT")
    init.add_argument("--posterior", nargs="+", required=True, metavar="KEYPOINT")
    init.add_argument("--keypoints", nargs="+", metavar="KEYPOINT",
                      help="the keypoints to use, in this order (default: all in the files); "
                      "drop unreliable ones by leaving them out")
    init.add_argument("--set", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                      help="override defaults, e.g. model.num_states=20 fitting.float64=true")
    init.add_argument("--overwrite", action="store_true", help="replace an existing config")

    fit = commands.add_parser(
        "fit", help="fit the model (AR-only stage, then the full model)",
        description="Fit a project's keypoint-SLDS: the AR-only stage, then the full model, "
        "with checkpoints; then write model.npz, results.h5, csv/ and report/. "
        "CONFIG_OR_DATA is a project folder, its config file, or pose-tracking data (then "
        "--anterior and --posterior are needed and a project is created at --project).")
    fit.add_argument("target", metavar="CONFIG_OR_DATA")
    fit.add_argument("--resume", action="store_true",
                     help="continue from PROJECT/checkpoint.npz (the same chain, bit for bit)")
    fit.add_argument("--overwrite", action="store_true",
                     help="start again although a checkpoint exists")
    fit.add_argument("--no-progress", action="store_true", help="no progress bar")
    fit.add_argument("--no-report", action="store_true", help="skip the figures")
    fit.add_argument("--no-compile-cache", action="store_true", help=_NO_CACHE_HELP)
    fit.add_argument("--project", metavar="DIR", help="project folder when fitting data "
                     "directly (default: moseq_project)")
    fit.add_argument("--anterior", nargs="+", metavar="KEYPOINT")
    fit.add_argument("--posterior", nargs="+", metavar="KEYPOINT")
    fit.add_argument("--set", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                     help="with data: config options of the new project")
    hosts = fit.add_argument_group(
        "several processes or hosts", "Start one `moseq fit PROJECT` per process; each reads "
        "its share of the files, process 0 writes the files (docs/concepts/sharding.md).")
    hosts.add_argument("--coordinator", metavar="HOST:PORT",
                       help="process 0's host and a free port, or `auto` under SLURM (srun) "
                       "or Open MPI (mpirun)")
    hosts.add_argument("--num-processes", type=int, metavar="N")
    hosts.add_argument("--process-id", type=int, metavar="I", help="0 to N - 1")
    hosts.add_argument("--heartbeat-timeout", type=int, default=pipeline.HEARTBEAT_TIMEOUT,
                       metavar="SECONDS", help="a process silent this long counts as dead "
                       "and the others stop (default: %(default)s)")

    apply = commands.add_parser(
        "apply", help="apply a fitted model to new recordings",
        description="Apply PROJECT's fitted model (model.npz) to new recordings and write "
        "results.h5 and csv/ to --output.")
    apply.add_argument("project", metavar="PROJECT", help="project folder or model.npz")
    apply.add_argument("data", nargs="+", metavar="DATA", help="files or folders")
    apply.add_argument("--output", metavar="DIR", help="default: PROJECT/applied")
    apply.add_argument("--keypoints", metavar="NAMES",
                       help="the files' keypoint names in the model's order (a,b,c), or a "
                       "mapping file_name=model_name,...")
    apply.add_argument("--sweeps", type=int, metavar="N", help="default: apply.num_sweeps")
    apply.add_argument("--no-progress", action="store_true", help="no progress bar")
    apply.add_argument("--no-compile-cache", action="store_true", help=_NO_CACHE_HELP)

    commands.add_parser("demo", help="fit models to built-in data (what `make demo` runs)",
                        description="Two-stage keypoint-SLDS fits on simulated keypoints and on "
                        "the JABS clip shipped with moseq.")
    return parser


def _fit_target(args) -> Path:
    """The project folder or config file to fit; creates a project when given data."""
    target = Path(args.target)
    if target.is_dir() and (target / pipeline.CONFIG_NAME).is_file():
        return target
    if target.is_file() and target.suffix == ".toml":
        return target
    if not target.exists():
        raise FileNotFoundError(f"{target} does not exist; give a project folder, a config "
                                "file or pose-tracking data.")
    if args.coordinator is not None:
        raise pipeline.ConfigError(
            f"{target} is data, not a project (no {pipeline.CONFIG_NAME}); across processes, "
            "create the project first (`moseq init-project`), then start `moseq fit PROJECT "
            "--coordinator ...` in every process.")
    if not (args.anterior and args.posterior):
        raise pipeline.ConfigError(
            f"{target} is data, not a project (no {pipeline.CONFIG_NAME}); pass --anterior and "
            "--posterior to fit it directly, or create a project with `moseq init-project`.")
    project = Path(args.project or "moseq_project")
    if (project / pipeline.CONFIG_NAME).exists() and not (args.overwrite or args.resume):
        raise FileExistsError(f"{project / pipeline.CONFIG_NAME} exists; run `moseq fit "
                              f"{project}`, or pass --project DIR for another folder.")
    if not (project / pipeline.CONFIG_NAME).exists() or args.overwrite:
        pipeline.init_project(project, [str(target)], args.anterior, args.posterior,
                              overwrite=True, **_parse_set(args.set))
        print(f"wrote {project / pipeline.CONFIG_NAME}", file=sys.stderr)
    return project


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `moseq` command; returns the exit status (0 on success, 1 on an error that
    moseq explains in one line: bad input, a file that cannot be written, a NaN in a sweep;
    130 when interrupted)."""
    args = _parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_data_warnings(args.command, warnings.showwarning)
        return _run(args)


def _show_data_warnings(command: str, show):
    """`warnings.showwarning` that prints a `DataWarning` as `moseq COMMAND: warning: ...`."""
    def showwarning(message, category, *args, **kwargs):
        if issubclass(category, DataWarning):
            print(f"moseq {command}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)
    return showwarning


def _run(args) -> int:
    try:
        if args.command == "init-project":
            sections = _parse_set(args.set)
            if args.keypoints:
                sections.setdefault("data", {})["keypoints"] = args.keypoints
            pipeline.init_project(args.project, args.data, args.anterior, args.posterior,
                                  overwrite=args.overwrite, **sections)
            print(f"wrote {Path(args.project) / pipeline.CONFIG_NAME}; edit it, then run "
                  f"`moseq fit {args.project}`.")
        elif args.command == "fit":
            processes = {} if args.coordinator is None else dict(
                coordinator=args.coordinator, num_processes=args.num_processes,
                process_id=args.process_id, heartbeat_timeout=args.heartbeat_timeout)
            result = pipeline.fit(_fit_target(args), resume=args.resume,
                                  overwrite=args.overwrite, progress=not args.no_progress,
                                  report=not args.no_report,
                                  compile_cache=False if args.no_compile_cache else None,
                                  **processes)
            for name, path in result.paths.items():
                print(f"{name}: {path}")
        elif args.command == "apply":
            result = pipeline.apply(args.project, args.data, args.output,
                                    keypoints=_parse_keypoints(args.keypoints),
                                    num_sweeps=args.sweeps, progress=not args.no_progress,
                                    compile_cache=False if args.no_compile_cache else None)
            for name, path in result.paths.items():
                print(f"{name}: {path}")
        elif args.command == "demo":
            from moseq.demo import main as demo

            demo()
    except KeyboardInterrupt:
        if args.command == "fit":
            print(f"\nmoseq fit: interrupted; continue from the last checkpoint with "
                  f"`moseq fit {args.target} --resume`.", file=sys.stderr)
        return 130
    except pipeline.WriteError as error:
        resume = (f" `moseq fit {args.target} --resume` continues from the last checkpoint."
                  if args.command == "fit" else "")
        print(f"moseq {args.command}: error: {error}{resume}", file=sys.stderr)
        return 1
    except (pipeline.ConfigError, NumericalFailure, OSError, ValueError) as error:
        print(f"moseq {args.command}: error: {error}", file=sys.stderr)
        return 1
    except pipeline.PeerFailure as error:
        print(f"moseq {args.command}: error: {error}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)  # at exit, JAX's shutdown would wait for the dead process
    return 0


if __name__ == "__main__":
    sys.exit(main())
