"""``satvsr export --onnx``: a network with its weights as an ONNX file for other runtimes.

The graph is the full forward, ``clip`` ``(1, 5, 3, H, W)`` float32 in [0, 1] → ``hr``
``(1, 3, 4H, 4W)`` (padding to the network's size multiple included), traced by
``torch.onnx.export`` (TorchScript exporter, opset 17) at ONE static size: the pure-PyTorch
deformable convolution computes its sampling grid from the frame size in Python, so a traced
graph is only right for the size it was traced at (a dynamic-axes export runs at other sizes and
gives wrong pixels, and a dynamic batch fails to reshape). Export once per tile size; the
deformable convolution becomes ONNX ``GridSample`` (opset 16+). The model's metadata records the
network, weights sha256, size and satvsr version.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from satvsr_cli import __version__
from satvsr_cli.errors import InputError, OutputError

OPSET = 17


def export_onnx(
    model: Any,
    out: str | Path,
    *,
    size: tuple[int, int] = (160, 160),
    opset: int = OPSET,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` (full forward at LR ``size`` = ``(H, W)``, batch 1) to ``out``.

    Raises:
        InputError: a non-positive size. OutputError: the file cannot be written.
    """
    import torch

    from satvsr_cli.engine.backend import traceable_copy
    from satvsr_cli.fsutil import atomic_write_bytes

    h, w = size
    if h < 1 or w < 1:
        raise InputError(f"--size must be positive, got {h}x{w}")
    path = Path(out)
    if path.is_dir():
        raise OutputError(f"{path}: --onnx names a folder, not a file")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: folder for --onnx does not exist")
    net = traceable_copy(model)
    frames = int(getattr(net, "frames", 5) or 5)
    example = torch.rand(1, frames, 3, h, w, generator=torch.Generator().manual_seed(0))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="satvsr-export-") as tmp:
        raw = Path(tmp) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (example,), str(raw), opset_version=opset, dynamo=False,
                              input_names=["clip"], output_names=["hr"])
        payload = raw.read_bytes()
    try:
        import onnx

        proto = onnx.load_from_string(payload)
        meta = {"satvsr_version": __version__, "lr_size": f"{h}x{w}",
                "input": f"clip (1, {frames}, 3, {h}, {w}) float32 [0, 1]",
                "output": f"hr (1, 3, {4 * h}, {4 * w})", **(metadata or {})}
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, str(v)
        payload = proto.SerializeToString()
    except ImportError:
        pass  # the file is complete without the metadata
    try:
        atomic_write_bytes(path, payload)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path
