"""`satvsr export` command (thin: parse options, call :mod:`satvsr_cli.engine.export`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from satvsr_cli.cli._app import app, guarded
from satvsr_cli.errors import InputError


def parse_hw(text: str) -> tuple[int, int]:
    """``160x160`` or ``160`` (LR pixels, height x width) → ``(h, w)``."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*", text.lower())
    if not m:
        raise InputError(f"--size must look like 160x160 (height x width), got {text!r}")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h < 1 or w < 1:
        raise InputError(f"--size must be positive, got {text!r}")
    return h, w


@app.command("export")
@guarded
def export_cmd(
    onnx: Annotated[Path, typer.Option(
        "--onnx", help="Write the network with its weights as ONNX (opset 17) to this file.",
        show_default=False)],
    model: Annotated[str | None, typer.Option(
        "-m", "--model", help="Network name; uses its shipped weights.")] = None,
    weights: Annotated[Path | None, typer.Option(
        "-w", "--weights", help="A .safetensors weights file with its .json manifest.")] = None,
    allow_random: Annotated[bool, typer.Option(
        "--allow-random", help="Export an untrained network when no weights exist.")] = False,
    size: Annotated[str, typer.Option(
        "--size", help="LR input size HxW. The graph is static: the deformable convolution's "
                       "sampling grid is traced for this size.")] = "160x160",
) -> None:
    """Export a network for other runtimes (ONNX Runtime, OpenVINO, TensorRT...).

    Input ``clip`` (1, 5, 3, H, W) float32 in [0, 1]; output ``hr`` (1, 3, 4H, 4W).
    """
    hw = parse_hw(size)
    from satvsr_cli.engine.export import export_onnx
    from satvsr_cli.weights import resolve_model

    net, display, sha = resolve_model(model, weights, "cpu", allow_random=allow_random)
    path = export_onnx(net, onnx, size=hw, metadata={
        "network": display, "weights_sha256": sha or "(random init)"})
    sys.stderr.write(f"wrote {path} ({display}, LR {hw[0]}x{hw[1]})\n")
