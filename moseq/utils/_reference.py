"""The reference API's parameter names over `moseq.ops` kernels."""

from __future__ import annotations

import functools
import inspect


def named_seed(kernel):
    """`kernel`, an ops function whose PRNG key parameter is `key`, with that parameter
    named `seed` (as the reference API names it).

    The wrapper passes `seed` on as `key` (positionally or by keyword), shows the renamed
    parameter in its signature, and keeps the kernel's name, module and docstring.
    """
    signature = inspect.signature(kernel)
    if "key" not in signature.parameters:
        raise TypeError(f"{kernel.__qualname__} has no parameter `key` to name `seed`.")

    @functools.wraps(kernel)
    def with_seed(*args, **kwargs):
        if "seed" in kwargs:
            kwargs["key"] = kwargs.pop("seed")
        return kernel(*args, **kwargs)

    with_seed.__signature__ = signature.replace(parameters=[
        parameter.replace(name="seed") if parameter.name == "key" else parameter
        for parameter in signature.parameters.values()
    ])
    return with_seed
