"""Speed benchmarks of moseq's kernels, with jax-moseq in the same run when it is importable."""
