"""Test set-up: 8 virtual CPU devices, float64 available, a compilation cache, hypothesis
profiles.

Exactness tests run in float64 (x64 is on for the whole suite); float32 tests pass float32
inputs explicitly, which also checks that every kernel keeps the dtype of its inputs.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import jax  # noqa: E402
from hypothesis import settings  # noqa: E402

jax.config.update("jax_enable_x64", True)

# A persistent compilation cache for the run: programs compiled by one test module are read
# back by the next (each module drops the in-memory caches, below), and a rerun starts warm.
# MOSEQ_TEST_COMPILATION_CACHE names another folder, or "off".
_CACHE = os.environ.get("MOSEQ_TEST_COMPILATION_CACHE",
                        os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax"))
if _CACHE != "off":
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(_CACHE))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=50, deadline=None)
# "ci" (the default) draws the same examples on every run; HYPOTHESIS_PROFILE=dev draws more,
# and new ones each time.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _fresh_compilation_caches():
    """Drop compiled programs after each test module: the suite compiles thousands of
    programs in one process, and XLA's CPU compiler was seen to crash late in a run that
    kept them all (never in a module run alone)."""
    yield
    jax.clear_caches()
