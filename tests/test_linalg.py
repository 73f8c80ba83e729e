"""`segment_gram`: per-segment weighted Gram matrices, exact in float64 and accurate in float32;
the CPU's factorisations agree with the solver libraries of other platforms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.ops.linalg import cholesky, segment_gram, solve_triangular


@pytest.mark.parametrize("block_size", [1, 4, 64])
def test_segment_gram_equals_per_segment_sums(block_size):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(300, 5))
    weights = (rng.uniform(size=300) > 0.3).astype(float)
    ids = rng.choice([0, 1, 3, 5], size=300, p=[0.7, 0.2, 0.05, 0.05])  # 2 and 4 are empty
    ids[:7] = [-1, 6, 9, -3, 6, 6, 7]  # out of range: dropped
    grams = np.asarray(segment_gram(rows, ids, 6, weights, block_size=block_size))
    for segment in range(6):
        chosen = ids == segment
        expected = rows[chosen].T @ (weights[chosen, None] * rows[chosen])
        np.testing.assert_allclose(grams[segment], expected, rtol=1e-12, atol=1e-12)


def test_float32_total_is_accurate_whatever_the_order():
    """A million rows in one segment (15,625 blocks): the float32 Gram is within 4
    eps·max|G| of the exact one, for any order of the rows. Blocks are totalled as a tree;
    added one after another, the error was about 10 eps·max|G| here."""
    rng = np.random.default_rng(1)
    rows = (1.0 + rng.normal(size=(1_000_000, 5))).astype(np.float32)
    exact = rows.astype(float).T @ rows.astype(float)
    gram = jax.jit(segment_gram, static_argnums=2)
    for order in (np.arange(len(rows)), rng.permutation(len(rows))):
        total = np.asarray(gram(rows[order], np.zeros(len(rows), int), 1)[0], float)
        assert np.abs(total - exact).max() < 4 * np.finfo(np.float32).eps * np.abs(exact).max()


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("lower", [True, False])
def test_cpu_loops_agree_with_the_solver_libraries_other_platforms_use(lower, transpose):
    """On CPU `cholesky` and `solve_triangular` run XLA loops; on a GPU they call the solver
    libraries (`jnp.linalg.cholesky`, `jax.scipy.linalg.solve_triangular`). Both paths give
    the same factors and solutions, and NaN for a matrix that is not positive definite."""
    rng = np.random.default_rng(1)
    factors = rng.normal(size=(3, 6, 6))
    A = factors @ factors.transpose(0, 2, 1) + 0.1 * np.eye(6)
    B = rng.normal(size=(3, 6, 4))
    with jax.enable_x64(True):
        np.testing.assert_allclose(cholesky(A), jnp.linalg.cholesky(A), rtol=1e-10, atol=1e-12)
        L = np.asarray(jnp.linalg.cholesky(A))
        L = L if lower else L.transpose(0, 2, 1)
        expected = jax.vmap(lambda L, B: jax.scipy.linalg.solve_triangular(
            L, B, lower=lower, trans=1 if transpose else 0))(L, B)
        np.testing.assert_allclose(solve_triangular(L, B, lower=lower, transpose=transpose),
                                   expected, rtol=1e-9, atol=1e-12)
        indefinite = np.diag([1.0, -1.0, 1.0])
        assert np.isnan(cholesky(indefinite)).any() and np.isnan(
            jnp.linalg.cholesky(indefinite)).any()
