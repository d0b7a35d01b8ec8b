"""The evaluation code under its earlier name; everything lives in :mod:`satvsr_cli.eval`
(protocol, run, report, speed, runtime)."""

from __future__ import annotations

from satvsr_cli.eval.protocol import (
    BICUBIC,
    N_FRAMES,
    SCALE,
    count_gmac,
    data_range_of,
    evaluate_bicubic,
    evaluate_model,
    predict_windows,
    read_frame,
)
from satvsr_cli.eval.report import FORMAT, BenchmarkReport, ClipResult, MethodResult
from satvsr_cli.eval.run import ModelRequest, evaluate
from satvsr_cli.eval.runtime import PRECISIONS, device_name, resolve_device
from satvsr_cli.eval.speed import SpeedResult, engine_runner, matmul_peak_gflops, speed_compare

__all__ = [
    "BICUBIC",
    "FORMAT",
    "N_FRAMES",
    "PRECISIONS",
    "SCALE",
    "BenchmarkReport",
    "ClipResult",
    "MethodResult",
    "ModelRequest",
    "SpeedResult",
    "count_gmac",
    "data_range_of",
    "device_name",
    "engine_runner",
    "evaluate",
    "evaluate_bicubic",
    "evaluate_model",
    "matmul_peak_gflops",
    "predict_windows",
    "read_frame",
    "resolve_device",
    "speed_compare",
]
