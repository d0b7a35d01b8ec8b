"""Speed mode: the engine against the plain full forward on one synthetic clip."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from satvsr_cli.engine.windows import frame_indices
from satvsr_cli.errors import InputError
from satvsr_cli.eval.protocol import N_FRAMES, count_gmac, has_engine_api, predict_windows
from satvsr_cli.eval.report import FORMAT, num, versions
from satvsr_cli.eval.runtime import autocast_for, device_name, sync

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SpeedResult:
    """The engine path against the reference structure, on one network and synthetic input."""

    method: str
    device: str
    device_name: str
    precision: str
    lr_size: tuple[int, int]
    frames: int
    batch_size: int
    engine: str
    engine_fps: float
    reference_fps: float
    speedup: float
    max_abs_diff: float
    gmac_full_forward: float | None
    gmac_engine_per_frame: float | None
    engine_gflops: float | None
    reference_gflops: float | None
    matmul_peak_gflops: float
    matmul_size: int
    repeats: int = 1
    weights_sha256: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    # issue 11: the bf16 roof, why this precision, its recorded PSNR change per dev set
    bf16_matmul_peak_gflops: float | None = None
    precision_reason: str = ""
    psnr_change_db: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["lr_size"] = list(self.lr_size)
        d["format"] = FORMAT + "+speed"
        return {k: (num(v) if isinstance(v, float) else v) for k, v in d.items()}


def matmul_peak_gflops(
    device: torch.device, *, size: int | None = None, repeats: int = 3
) -> tuple[float, int]:
    """Best-of-``repeats`` fp32 GFLOP/s of an ``n×n @ n×n`` matmul (n = 2048 CPU, 8192 CUDA).

    TF32 is left as torch's default (off for matmul), so this is the plain fp32 peak.
    """
    import torch

    n = size or (8192 if device.type == "cuda" else 2048)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    torch.mm(a, b)  # warm-up
    sync(device)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9, n


EngineRun = Callable[[list[npt.NDArray[np.float32]], Sequence[int], int], list[npt.NDArray[Any]]]
"""``run(frames (h, w, 3) float32 in [0, 1], centres, n_total) -> [(3, 4h, 4w) float32]``."""


def engine_runner(
    model: torch.nn.Module, device: torch.device, precision: str, batch_size: int
) -> tuple[str, EngineRun]:
    """The inference engine as ``satvsr upscale`` runs it (whole-frame tile), as a callable.

    Uses :class:`satvsr_cli.engine.infer.WindowUpscaler` (per-frame feature cache, autocast,
    output clamped to [0, 1] as the engine writes it). If the engine is not importable, falls
    back to :func:`predict_windows` with shared features, clamped the same way.
    """
    import torch

    try:
        from satvsr_cli.engine.convert import plan_bands
        from satvsr_cli.engine.infer import WindowUpscaler
        from satvsr_cli.io.base import Frame

        up = WindowUpscaler(
            model,
            device=device,
            precision=precision,
            tile=None,
            overlap=0,
            blend="none",
            batch=batch_size,
            cache_budget=1 << 40,
            bands=plan_bands(3),
            value_range=(0.0, 1.0),
            out_dtype="float32",
        )
    except (ImportError, TypeError, AttributeError):
        up = None

    if up is not None:
        engine = up

        def run_engine(
            frames: list[npt.NDArray[np.float32]], centres: Sequence[int], n_total: int
        ) -> list[npt.NDArray[Any]]:
            fr = {i: Frame(i, a, None) for i, a in enumerate(frames)}
            outs = []
            for c in centres:
                outs.append(engine.upscale(c, frame_indices(c, n_total, N_FRAMES, "centre"), fr))
                engine.forget(c - N_FRAMES // 2)  # no later window uses it
            engine.clear_cache()
            return outs

        return "satvsr_cli.engine.infer.WindowUpscaler (whole frame, shared features)", run_engine

    def run_fallback(
        frames: list[npt.NDArray[np.float32]], centres: Sequence[int], n_total: int
    ) -> list[npt.NDArray[Any]]:
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous().to(device)
        with autocast_for(device, precision, model), torch.inference_mode():
            return [
                out.float().clamp(0, 1).cpu().numpy()
                for _, out in predict_windows(
                    model, x, centres, n_total=n_total, batch_size=batch_size
                )
            ]

    return "satvsr_cli.eval.predict_windows (shared features; engine not importable)", (
        run_fallback
    )


def speed_compare(
    model: torch.nn.Module,
    *,
    name: str = "model",
    weights_sha256: str | None = None,
    lr_size: tuple[int, int] = (160, 160),
    frames: int = 10,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    batch_size: int = 4,
    seed: int = 0,
    repeats: int = 1,
    backend: str | None = None,
    threads: int | None = None,
    tile: int | str | None = None,
) -> SpeedResult:
    """The engine against the reference structure, in one run, on the same synthetic clip.

    The reference is one full ``model(window)`` forward per output frame, batch 1, fp32, its
    output copied to the host. The engine is :func:`engine_runner` in ``precision``. Both get one
    untimed warm-up (the reference's counts the MACs), then are timed over ``frames`` output frames
    (CUDA synchronised); with ``repeats`` > 1 the two paths alternate and each keeps its
    best time. ``max_abs_diff`` compares the two outputs after the engine's [0, 1]
    clamp. Achieved GFLOP/s = 2 × MACs actually executed / time (the engine computes each frame's
    features once, the reference five times), set against an fp32 matmul peak measured in the
    same run.

    With ``backend`` (``auto``/``torch``/``openvino``, CPU) the engine is built as ``satvsr
    upscale`` builds it (:func:`satvsr_cli.eval.levers.engine_run_fn`: runner, precision rule with
    ``precision="auto"``, ``tile`` ``"auto"`` or LR pixels, ``threads``).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if frames < 1:
        raise InputError(f"--frames must be >= 1, got {frames}")
    dev = torch.device(device)
    why = ""
    if precision != "auto":
        autocast_for(dev, precision)  # validates
    model.to(dev).eval()
    h, w = lr_size
    gen = torch.Generator(device="cpu").manual_seed(seed)
    base = torch.rand(1, 3, max(1, h // 4), max(1, w // 4), generator=gen)
    smooth = torch.nn.functional.interpolate(base, size=(h, w), mode="bicubic", align_corners=False)
    noise = torch.rand(frames, 3, h, w, generator=gen)
    clip_cpu = (0.8 * smooth + 0.2 * noise).clamp(0, 1)  # texture + per-frame noise
    clip = clip_cpu.to(dev)
    frames_np = [f.permute(1, 2, 0).contiguous().numpy() for f in clip_cpu]
    centres = list(range(frames))
    if backend is not None and dev.type == "cpu":  # issue 11: the engine with its defaults
        from satvsr_cli.eval.levers import engine_run_fn

        engine_label, run_engine, precision, why = engine_run_fn(
            model, (h, w), backend=backend, precision=precision, threads=threads,
            tile="auto" if tile is None else tile)
    else:
        if precision == "auto":
            from satvsr_cli.engine.precision import choose_precision, weights_precision

            precision, why = choose_precision("auto", dev, "torch", weights_precision(model))
        engine_label, run_engine = engine_runner(model, dev, precision, batch_size)

    def reference() -> list[npt.NDArray[Any]]:
        with torch.inference_mode():
            return [
                out.float().cpu().numpy()
                for _, out in predict_windows(
                    model, clip, centres, n_total=frames, batch_size=1, share_features=False
                )
            ]

    with torch.inference_mode():
        win0 = clip[frame_indices(0, frames, N_FRAMES, "centre")][None]
        gmac_full = count_gmac(model, win0)
        model(win0)  # the reference's plain warm-up (the first calls after the counter are slow)
        gmac_engine: float | None = gmac_full
        if has_engine_api(model):
            try:
                from satvsr_cli.models.blocks import pad_to_multiple

                p = pad_to_multiple(win0, int(getattr(model, "size_multiple", 1) or 1))
                with FlopCounterMode(display=False) as c1:
                    f1 = model.extract(p[0, :1])  # type: ignore[operator]
                feats = f1[None].expand(1, N_FRAMES, *f1.shape[1:]).contiguous()
                with FlopCounterMode(display=False) as c2:
                    model.forward_window(p, feats)  # type: ignore[operator]
                gmac_engine = (c1.get_total_flops() + c2.get_total_flops()) / 2e9
            except Exception:  # noqa: BLE001  (as in count_gmac)
                gmac_engine = None
    run_engine(frames_np, centres[: min(frames, 2)], frames)  # engine warm-up
    sync(dev)

    t_ref = t_eng = math.inf
    for _ in range(max(1, repeats)):  # alternate the two paths; keep the best time of each
        t0 = time.perf_counter()
        ref_out = reference()
        sync(dev)
        t_ref = min(t_ref, time.perf_counter() - t0)

        t0 = time.perf_counter()
        eng_out = run_engine(frames_np, centres, frames)
        sync(dev)
        t_eng = min(t_eng, time.perf_counter() - t0)

    diff = max(
        float(np.abs(np.asarray(a, np.float64) - np.clip(b, 0.0, 1.0)).max())
        for a, b in zip(eng_out, ref_out, strict=True)
    )
    peak, n = matmul_peak_gflops(dev)
    bf16_peak = change = None
    if dev.type == "cpu":
        from satvsr_cli.engine.precision import weights_precision
        from satvsr_cli.eval.levers import matmul_peaks

        bf16_peak = matmul_peaks(n, repeats=3)["bf16"]
        results = (weights_precision(model) or {}).get("results") or {}
        runner_name = "openvino" if "openvino" in engine_label else "torch"
        if precision == "bf16":
            change = {k: float(v["delta_db"]) for k, v in results.get(runner_name, {}).items()}
    return SpeedResult(
        method=name,
        device=str(dev),
        device_name=device_name(dev),
        precision=precision,
        lr_size=(h, w),
        frames=frames,
        batch_size=batch_size,
        engine=engine_label,
        engine_fps=frames / t_eng,
        reference_fps=frames / t_ref,
        speedup=t_ref / t_eng,
        max_abs_diff=diff,
        gmac_full_forward=gmac_full,
        gmac_engine_per_frame=gmac_engine,
        engine_gflops=2 * gmac_engine * frames / t_eng if gmac_engine is not None else None,
        reference_gflops=2 * gmac_full * frames / t_ref if gmac_full is not None else None,
        matmul_peak_gflops=peak,
        matmul_size=n,
        repeats=max(1, repeats),
        weights_sha256=weights_sha256,
        versions=versions(),
        bf16_matmul_peak_gflops=bf16_peak,
        precision_reason=why,
        psnr_change_db=change or {},
    )
