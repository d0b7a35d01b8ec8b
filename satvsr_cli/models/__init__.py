"""The satvsr network zoo: MSDTGP and LGTD (×4, 5 frames), built by name through a registry.

Public API: :func:`build_model`, :func:`list_models`, :func:`get_spec`, :class:`ModelSpec`,
:data:`TINY_OVERRIDES` (tiny kwargs for tests), and the network classes. Every network maps a
clip ``(B, 5, 3, h, w)`` in [0, 1] to ``(B, 3, 4h, 4w)`` (unclamped), and exposes ``extract`` /
``forward_window`` / ``size_multiple`` for engines that reuse per-frame work. The sizes of the
registered networks are tabulated in :mod:`satvsr_cli.models.registry`.
"""

from __future__ import annotations

from satvsr_cli.models.blocks import VSRNetwork, pad_to_multiple
from satvsr_cli.models.lgtd import LGTD
from satvsr_cli.models.lgtd import checkpoint_filter_fn as lgtd_checkpoint_filter_fn
from satvsr_cli.models.msdtgp import MSDTGP
from satvsr_cli.models.msdtgp import checkpoint_filter_fn as msdtgp_checkpoint_filter_fn
from satvsr_cli.models.registry import (
    TINY_OVERRIDES,
    ModelSpec,
    build_model,
    get_spec,
    list_models,
    tiny_overrides,
)

__all__ = [
    "LGTD",
    "MSDTGP",
    "TINY_OVERRIDES",
    "ModelSpec",
    "VSRNetwork",
    "build_model",
    "get_spec",
    "lgtd_checkpoint_filter_fn",
    "list_models",
    "msdtgp_checkpoint_filter_fn",
    "pad_to_multiple",
    "tiny_overrides",
]
