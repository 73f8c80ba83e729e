"""The pipeline's persistent compilation cache (`moseq.pipeline.compilation_cache`): its
folder, on and off, JAX's settings restored after it."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from jax.experimental.compilation_cache import compilation_cache as jax_cache

from moseq.pipeline import CACHE_ENV, _cache, compilation_cache, default_cache_folder


def test_default_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_folder() == tmp_path / "home" / ".cache" / "moseq" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_folder() == tmp_path / "xdg" / "moseq" / "jax"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert default_cache_folder() == tmp_path / "mine"


@pytest.fixture
def no_cache_set():
    """JAX with no cache folder set (the suite sets one in conftest), restored after."""
    saved = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    jax_cache.reset_cache()
    yield
    jax.config.update("jax_compilation_cache_dir", saved)
    jax_cache.reset_cache()


def test_on_writes_programs_to_the_default_folder(tmp_path, monkeypatch, no_cache_set):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(_cache, "MIN_COMPILE_SECONDS", 0.0)  # cache even a tiny program
    with compilation_cache(True) as folder:
        assert folder == tmp_path / "cache"
        assert jax.config.jax_compilation_cache_dir == str(folder)
        jax.block_until_ready(jax.jit(lambda x: jnp.sin(x) * 3.25 + 1.5)(jnp.ones(7)))
    assert any(Path(folder).iterdir())
    assert jax.config.jax_compilation_cache_dir is None


def test_a_folder_set_already_is_kept_and_off_turns_it_off(tmp_path, no_cache_set):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "theirs"))
    with compilation_cache(True) as folder:
        assert folder == tmp_path / "theirs"
    with compilation_cache(False) as folder:
        assert folder is None
        assert jax.config.jax_compilation_cache_dir is None
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "theirs")
