"""moseq: blocked Gibbs sampling for behavioural syllables in JAX and Equinox.

Layers (imports only point down): `moseq.utils` (the reference API's module paths) and
`moseq.ops` (pure kernels) are available now.
"""

__version__ = "0.1.0"
