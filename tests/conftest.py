"""Test set-up: 8 virtual CPU devices, float64 available, hypothesis profiles.

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

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _fresh_compilation_caches():
    """Drop compiled programs after each test module: the suite compiles thousands of
    programs in one process, and XLA's CPU compiler was seen to crash late in a run that
    kept them all (never in a module run alone)."""
    yield
    jax.clear_caches()
