"""Training: configs and recipes, real and synthetic clip data, the loop, checkpoints and export.

Public API (imports torch only through :mod:`satvsr_cli.train.loop`):

- :mod:`satvsr_cli.train.config`: :class:`RunConfig` and its sections, :func:`recipe`,
  :func:`build_config`, ``--set`` parsing.
- :mod:`satvsr_cli.train.data`: :class:`TrainData` (Jilin-layout clips and still images).
- :mod:`satvsr_cli.train.synth`: :func:`synth_window`, the synthetic-motion clip generator.
- :mod:`satvsr_cli.train.loop`: :func:`prepare` → :class:`Trainer` → ``fit()``,
  :func:`export_run`.
"""

from __future__ import annotations

from satvsr_cli.train.config import (
    RECIPES,
    DataConfig,
    ModelConfig,
    RunConfig,
    SourceConfig,
    SynthConfig,
    TrainConfig,
    build_config,
    recipe,
)

__all__ = [
    "RECIPES",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "SourceConfig",
    "SynthConfig",
    "TrainConfig",
    "build_config",
    "recipe",
]
