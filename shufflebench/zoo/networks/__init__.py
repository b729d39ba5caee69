"""Importing this package registers every zoo network with `shufflebench.zoo.registry` (in this order)."""

from . import shufflenet_v1, shufflenet_v2, mobilenet, classic, micro, space  # noqa: F401
