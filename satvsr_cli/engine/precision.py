"""``--precision auto``: bf16 only where it is fast and measured to be harmless for the weights.

The rule (issue 11): ``auto`` picks bf16 when

1. the device runs bf16 fast: on CPU an AMX or AVX-512-bf16 unit (:mod:`satvsr_cli.engine.cpu`),
   on CUDA ``torch.cuda.is_bf16_supported()``; and
2. the weights' manifest has a ``precision`` block (written by ``scripts/check_precision.py``)
   whose measurement for the chosen backend shows bf16 within :data:`BF16_TOLERANCE_DB` of fp32
   PSNR on every dev set measured;

otherwise fp32. Networks without a manifest (random initialisation, plain modules) run fp32.
Explicit ``fp32``/``bf16``/``fp16`` are checked by :func:`satvsr_cli.device.resolve_precision`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from satvsr_cli.device import resolve_precision
from satvsr_cli.engine.cpu import cpu_has_fast_bf16

#: Largest PSNR change (dB, either sign) of bf16 against fp32 that ``auto`` accepts.
BF16_TOLERANCE_DB = 0.05


def weights_precision(model: Any) -> dict[str, Any] | None:
    """The ``precision`` block of the manifest the network was loaded from, if any."""
    manifest = getattr(model, "weights_manifest", None)
    block = getattr(manifest, "precision", None)
    return dict(block) if isinstance(block, Mapping) and block else None


def bf16_verdict(record: Mapping[str, Any] | None, backend: str) -> tuple[bool, str]:
    """Whether a manifest ``precision`` block allows bf16 on ``backend``, and why (one line)."""
    if not record:
        return False, "the weights record no bf16 check"
    results = (record.get("results") or {}).get(backend)
    if not isinstance(results, Mapping) or not results:
        return False, f"the weights record no bf16 check for the {backend} backend"
    tol = float(record.get("tolerance_db", BF16_TOLERANCE_DB))
    tol = min(tol, BF16_TOLERANCE_DB)
    worst_name, worst = "", 0.0
    for name, row in results.items():
        try:
            delta = float(row["delta_db"])
        except (KeyError, TypeError, ValueError):
            return False, f"malformed bf16 record for {name}"
        if abs(delta) >= abs(worst):
            worst_name, worst = name, delta
    if abs(worst) > tol:
        return False, f"bf16 changes PSNR by {worst:+.3f} dB on {worst_name} (limit {tol:g})"
    return True, f"bf16 within {abs(worst):.3f} dB of fp32 on {len(results)} dev set(s)"


def device_has_fast_bf16(device: Any) -> bool:
    """bf16 is native on this device (CPU matrix unit, or CUDA bf16 support)."""
    kind = getattr(device, "type", str(device))
    if kind == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    if kind == "cpu":
        return cpu_has_fast_bf16()
    return False


def choose_precision(
    requested: str, device: Any, backend: str, record: Mapping[str, Any] | None
) -> tuple[str, str]:
    """The precision to run and a one-line reason.

    ``requested`` other than ``auto`` is validated and returned as is. ``auto`` follows the
    module rule; CUDA weights with no record run fp32, as on CPU.
    """
    if (requested or "auto").lower() != "auto":
        return resolve_precision(requested, device), "requested"
    kind = getattr(device, "type", str(device))
    if kind not in ("cpu", "cuda"):
        return "fp32", f"auto: fp32 on {kind}"
    if not device_has_fast_bf16(device):
        what = "this CPU has no AMX/AVX-512-bf16 unit" if kind == "cpu" else "no bf16 on this GPU"
        return "fp32", f"auto: fp32 ({what})"
    ok, why = bf16_verdict(record, "torch" if kind == "cuda" else backend)
    return ("bf16", f"auto: {why}") if ok else ("fp32", f"auto: fp32 ({why})")
