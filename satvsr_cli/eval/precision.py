"""The bf16 check behind ``--precision auto``: fp32 against bf16 PSNR on dev sets, per backend.

:func:`measure_precision` scores a weights file with the benchmark protocol
(:func:`satvsr_cli.eval.protocol.evaluate_model`: RGB, full frame, unclamped, centre padding, official
LR4x frames) in fp32 and in bf16, on the torch backend (autocast) and, when installed, on
OpenVINO (``INFERENCE_PRECISION_HINT``), and returns the manifest's ``precision`` block;
:func:`record_precision` writes it into the weights' JSON manifest (the .safetensors file is not
touched, so its sha256 stays valid). ``scripts/check_precision.py`` is the command.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from satvsr_cli.engine.precision import BF16_TOLERANCE_DB

PROTOCOL = ("satvsr benchmark protocol (RGB PSNR, full frame, unclamped, centre padding, LR4x "
            "files, mean over clips); delta_db = bf16 - fp32")


class RunnerModule(torch.nn.Module):
    """A backend runner dressed as a satvsr network, for code that takes a module."""

    def __init__(self, net: torch.nn.Module, runner: Any) -> None:
        super().__init__()
        self.runner = runner
        self._anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        for attr in ("scale", "frames", "size_multiple", "feat_channels"):
            setattr(self, attr, getattr(net, attr))

    def extract(self, frames: torch.Tensor) -> torch.Tensor:
        """``net.extract`` through the runner."""
        out: torch.Tensor = self.runner.extract(frames)
        return out

    def forward_window(self, clip: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """``net.forward_window`` through the runner."""
        out: torch.Tensor = self.runner.forward_window(clip, feats)
        return out

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``net(clip)`` through the runner."""
        out: torch.Tensor = self.runner.forward(clip)
        return out


def dataset_label(root: Path) -> str:
    """``.../taipei/eval`` → ``taipei/eval`` (the manifests' metric keys)."""
    return f"{root.parent.name}/{root.name}"


def measure_precision(
    weights: str | Path,
    roots: Sequence[str | Path],
    *,
    backends: Sequence[str] | None = None,
    max_frames: int | None = None,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The ``precision`` block for ``weights``: fp32 and bf16 PSNR per dev set and backend."""
    from satvsr_cli.engine.backend import OpenVINORunner, openvino_available
    from satvsr_cli.engine.cpu import cpu_info
    from satvsr_cli.engine.kernelcheck import faulty_bf16_convs
    from satvsr_cli.eval.protocol import evaluate_model
    from satvsr_cli.jilin import find_clips
    from satvsr_cli.weights import load_weights

    net, manifest = load_weights(weights)
    if backends is None:
        backends = ["torch"] + (["openvino"] if openvino_available() else [])
    results: dict[str, dict[str, Any]] = {}
    versions = {"torch": torch.__version__}
    for backend in backends:
        rows: dict[str, Any] = {}
        for root in map(Path, roots):
            clips = find_clips(root)
            psnr: dict[str, float] = {}
            frames = 0
            for prec in ("fp32", "bf16"):
                if on_step is not None:
                    on_step(f"{manifest.path.name}: {backend} {prec} on {dataset_label(root)}")
                if backend == "openvino":
                    runner = OpenVINORunner(net, prec)
                    versions["openvino"] = runner.ov.__version__
                    model: torch.nn.Module = RunnerModule(net, runner)
                    res = evaluate_model(model, clips, precision="fp32", max_frames=max_frames)
                else:
                    res = evaluate_model(net, clips, precision=prec, max_frames=max_frames)
                psnr[prec] = float(res.psnr)
                frames = res.frames
            rows[dataset_label(root)] = {
                "psnr_fp32": round(psnr["fp32"], 4),
                "psnr_bf16": round(psnr["bf16"], 4),
                "delta_db": round(psnr["bf16"] - psnr["fp32"], 4),
                "frames": frames,
            }
        results[backend] = rows
    info = cpu_info()
    block: dict[str, Any] = {
        "tolerance_db": BF16_TOLERANCE_DB,
        "protocol": PROTOCOL + (f", first {max_frames} frames per clip" if max_frames else ""),
        "results": results,
        "versions": versions,
        "cpu": info.model,
        "matrix_unit": info.matrix_unit,
        "measured": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    faulty = faulty_bf16_convs(net)
    if faulty:  # these ran fp32 in the "bf16" rows: torch kept them, OpenVINO ran fp32 throughout
        block["bf16_faulty_convs"] = faulty
    return block


def record_precision(weights: str | Path, block: dict[str, Any]) -> Path:
    """Write ``block`` as the ``precision`` entry of the weights' JSON manifest (atomically;
    every other entry and the .safetensors file are left as they are)."""
    from satvsr_cli.fsutil import atomic_write_text
    from satvsr_cli.weights import read_manifest

    manifest = read_manifest(weights)  # validates
    path = manifest.manifest_path
    raw = json.loads(path.read_text())
    raw["precision"] = block
    atomic_write_text(path, json.dumps(raw, indent=2, sort_keys=False) + "\n")
    return path
