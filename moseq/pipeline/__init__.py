"""The user pipeline: a project folder with a config file, a checkpointed two-stage fit,
applying a fitted model to new recordings, and the exported results.

    moseq.pipeline.init_project("my_project", ["videos/"], anterior=["nose"],
                                posterior=["tailbase"])        # writes my_project/config.toml
    # ... edit my_project/config.toml ...
    moseq.pipeline.fit("my_project")                # or `moseq fit my_project` in a shell
    moseq.pipeline.fit("my_project", resume=True)   # after a crash: continues the same chain
    moseq.pipeline.apply("my_project", ["new_videos/"], output="new_results")

A project folder holds:

    config.toml      every hyperparameter and preprocessing choice ([data], [model],
                     [fitting], [apply]), with comments; see `Config`
    checkpoint.npz   the latest checkpoint of the fit (see `save_checkpoint`), written
                     atomically every `fitting.checkpoint_every` sweeps and at the end of
                     each stage
    model.npz        the fitted parameters and the config they were fitted with (see
                     `save_model`), what `apply` reads
    results.h5       per-recording, per-frame results (layout: `moseq.export`)
    csv/             the same results, one CSV per recording
    report/          figures and report.md / report.html (`moseq.viz.write_report`)
    .moseq-outputs-fit.json   the files the last fit wrote; a refit removes those it does not
                     write again, never a file moseq did not write (nor one changed since)

Every file is written atomically (`.moseq-*.tmp`, then moved into place; the next run removes
what a kill left), with the permissions of the user's umask; a file that cannot be written
raises `WriteError` (its path and the reason).

The fit is `moseq.models.fit_staged` with key `fitting.seed`, kappa `model.kappa_ar` in the
AR-only stage and `model.kappa_full` in the full model; a resumed fit hands it the
checkpoint's state, sweep and trace, so it is bit for bit the fit that was never interrupted.

Precision is the config's choice (`fitting.float64`), not the process's: the fit and the
application run inside `jax.enable_x64(fitting.float64)` with the data cast to that float.
"""

# One module per job: _config (the config schema and its TOML), _files (checkpoint and model
# files, the outputs record), _progress (the progress display), _project / _fit / _apply
# (set-up, fit, apply), _distributed (a fit across processes and hosts), _cache (the
# persistent compilation cache).

from moseq._atomic import WriteError
from moseq.pipeline._apply import ApplyResult, apply
from moseq.pipeline._cache import CACHE_ENV, compilation_cache, default_cache_folder
from moseq.pipeline._config import (
    CONFIG_NAME,
    RESUMABLE_KEYS,
    ApplyConfig,
    Config,
    ConfigError,
    DataConfig,
    FittingConfig,
    ModelConfig,
)
from moseq.pipeline._distributed import HEARTBEAT_TIMEOUT, PeerFailure
from moseq.pipeline._distributed import initialize as initialize_distributed
from moseq.pipeline._files import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    CSV_DIR,
    FILE_FORMAT_VERSION,
    MODEL_FORMAT,
    MODEL_NAME,
    REPORT_DIR,
    RESULTS_NAME,
    Checkpoint,
    FittedModel,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)
from moseq.pipeline._fit import FitResult, fit
from moseq.pipeline._progress import ProgressBar
from moseq.pipeline._project import build_model, init_project, load_data

# In the order of the API page (docs/api/pipeline.md): config, set-up, fit, apply, files.
__all__ = [
    "Config",
    "DataConfig",
    "ModelConfig",
    "FittingConfig",
    "ApplyConfig",
    "ConfigError",
    "WriteError",
    "RESUMABLE_KEYS",
    "init_project",
    "load_data",
    "build_model",
    "fit",
    "FitResult",
    "initialize_distributed",
    "PeerFailure",
    "HEARTBEAT_TIMEOUT",
    "ProgressBar",
    "compilation_cache",
    "default_cache_folder",
    "CACHE_ENV",
    "apply",
    "ApplyResult",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "FittedModel",
    "save_model",
    "load_model",
    "CONFIG_NAME",
    "CHECKPOINT_NAME",
    "MODEL_NAME",
    "RESULTS_NAME",
    "CSV_DIR",
    "REPORT_DIR",
    "CHECKPOINT_FORMAT",
    "MODEL_FORMAT",
    "FILE_FORMAT_VERSION",
]
