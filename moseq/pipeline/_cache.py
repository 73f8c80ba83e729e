"""JAX's persistent compilation cache for `fit` and `apply`: the programs of a fit are
written to a folder, so the next fit or application of the same shapes reads them back
instead of compiling them again (seconds instead of about a minute on a laptop CPU)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "MOSEQ_COMPILATION_CACHE"
"""Environment variable naming the cache folder (default: `default_cache_folder()`)."""

MIN_COMPILE_SECONDS = 0.1
"""Programs that compile faster than this are not cached (JAX's default, 1 s, would leave
out some of the smaller block programs; the tiny eager ops are not worth a file each)."""


def default_cache_folder() -> Path:
    """`$MOSEQ_COMPILATION_CACHE`, else `$XDG_CACHE_HOME/moseq/jax`, else
    `~/.cache/moseq/jax`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "moseq" / "jax"


@contextlib.contextmanager
def compilation_cache(enabled: bool = True) -> Iterator[Path | None]:
    """Within the block, JAX's persistent compilation cache is on (`enabled`) or off; yields
    its folder (None when off). A cache folder set already (`JAX_COMPILATION_CACHE_DIR`,
    `jax.config.update("jax_compilation_cache_dir", ...)`) is kept, else
    `default_cache_folder()` is used. JAX's settings are restored on exit."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as jax_cache

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {name: getattr(jax.config, name) for name in names}
    folder = None
    if enabled:
        folder = Path(saved["jax_compilation_cache_dir"] or default_cache_folder())
        settings = {names[0]: str(folder), names[1]: min(saved[names[1]], MIN_COMPILE_SECONDS)}
    else:
        settings = {names[0]: None}
    changed = any(saved[name] != value for name, value in settings.items())
    for name, value in settings.items():
        jax.config.update(name, value)
    if changed:
        jax_cache.reset_cache()  # JAX opens its cache once; reopen it with these settings
    try:
        yield folder
    finally:
        for name, value in saved.items():
            jax.config.update(name, value)
        if changed:
            jax_cache.reset_cache()


def cache_note(folder: Path | None) -> str:
    """The progress display's line about the cache `compilation_cache` yielded."""
    if folder is None:
        return "compiling afresh (the persistent compilation cache is off)"
    return f"compiled programs are cached in {folder} (a rerun of these shapes reads them back)"
