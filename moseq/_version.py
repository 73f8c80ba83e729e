"""The version of moseq: its one home (read by `pyproject.toml`, `moseq.__version__` and the
files moseq writes)."""

__version__ = "0.1.0"
