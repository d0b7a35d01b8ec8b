"""Streaming inference engine: temporal windows, spatial tiling, precision and device handling.

Public API (imported lazily, so that ``import satvsr_cli.engine.config`` stays light):
:func:`plan_job` (decide everything about a job: :class:`JobPlan`), :func:`upscale` (execute
it), :func:`probe` (report the plan without loading a network), :class:`UpscaleConfig`,
:class:`UpscaleSummary`, :class:`ProgressEvent`, :class:`ProbeReport`, :class:`WindowUpscaler`
(the core), :func:`plan_tiles`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "upscale": "satvsr_cli.engine.run",
    "plan_job": "satvsr_cli.engine.plan",
    "JobPlan": "satvsr_cli.engine.plan",
    "probe": "satvsr_cli.engine.probe",
    "ProbeReport": "satvsr_cli.engine.probe",
    "UpscaleConfig": "satvsr_cli.engine.config",
    "UpscaleSummary": "satvsr_cli.engine.config",
    "ProgressEvent": "satvsr_cli.engine.config",
    "WindowUpscaler": "satvsr_cli.engine.infer",
    "plan_tiles": "satvsr_cli.engine.tiling",
    "frame_indices": "satvsr_cli.engine.windows",
}

__all__ = [
    "JobPlan",
    "ProbeReport",
    "ProgressEvent",
    "UpscaleConfig",
    "UpscaleSummary",
    "WindowUpscaler",
    "frame_indices",
    "plan_job",
    "plan_tiles",
    "probe",
    "upscale",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'satvsr_cli.engine' has no attribute {name!r}")
