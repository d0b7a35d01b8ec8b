"""CPU speed levers, measured in one run: each lever's share, tile throughput, engine vs reference.

Everything is a ratio against the fixed reference path measured in the same process, so that the
figures are comparable on a busy machine (but absolute times are only meaningful on a quiet one):

* :func:`matmul_peaks`: fp32 and bf16 ``n×n`` matmul GFLOP/s (the roof for the GFLOP/s columns).
* :func:`lever_rows`: one window ``model(x)`` on a ``(1, 5, 3, S, S)`` clip under each lever:
  fp32 contiguous (the reference), channels_last, bf16 autocast, bf16 + channels_last, OpenVINO
  f32 and bf16, and optionally ``torch.compile`` (inductor; its compile time is reported).
* :func:`tile_rows`: the engine (:class:`~satvsr_cli.engine.infer.WindowUpscaler`, shared
  features, overlap and blending included) on one frame size with several tile sizes.
* :func:`engine_vs_reference`: the engine with its defaults (backend, precision rule, tile) against
  the reference structure (one full fp32 forward per window, batch 1, contiguous, whole frame).
* :func:`end_to_end`: a whole ``satvsr upscale`` job on PNG frames against a plain fp32
  ``model(x)`` loop over the same decoded frames.

``scripts/bench_speed.py`` runs them and prints the tables.
"""

from __future__ import annotations

import copy
import functools
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _best(fn: Callable[[], Any], repeats: int) -> float:
    """Best wall time of ``repeats`` calls (after one untimed call)."""
    fn()
    best = math.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _cpu_times() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


def matmul_peaks(size: int = 2048, repeats: int = 3) -> dict[str, float]:
    """Best-of GFLOP/s of an fp32 and a bf16 ``size²`` matmul on the CPU."""
    gen = torch.Generator().manual_seed(0)
    out = {}
    for label, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, generator=gen).to(dt)
        b = torch.randn(size, size, generator=gen).to(dt)
        t = _best(functools.partial(torch.mm, a, b), repeats)
        out[label] = 2.0 * size**3 / t / 1e9
    return out


def clip_of(size: tuple[int, int], frames: int = 5, seed: int = 0) -> torch.Tensor:
    """A textured synthetic ``(frames, 3, h, w)`` clip in [0, 1] (smooth base + noise)."""
    h, w = size
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, max(1, h // 4), max(1, w // 4), generator=gen)
    smooth = torch.nn.functional.interpolate(base, size=(h, w), mode="bicubic",
                                             align_corners=False)
    return (0.8 * smooth + 0.2 * torch.rand(frames, 3, h, w, generator=gen)).clamp(0, 1)


@dataclass
class LeverRow:
    """One lever at one LR size."""

    size: int
    lever: str
    ms: float | None
    gflops: float | None
    ratio: float | None
    note: str = ""


def lever_rows(
    model: torch.nn.Module,
    sizes: list[int],
    *,
    repeats: int = 3,
    openvino: bool = True,
    compile_: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> list[LeverRow]:
    """``model(x)`` per window under each lever, best of ``repeats``; ratio = reference / lever."""
    from satvsr_cli.engine.backend import openvino_available

    ref_net = copy.deepcopy(model).float().eval()
    cl_net = copy.deepcopy(ref_net)
    cl_net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    rows: list[LeverRow] = []
    for s in sizes:
        # torch.compile costs minutes per shape on 2 cores: measured at the small sizes only
        rows += _levers_at(ref_net, cl_net, s, repeats=repeats,
                           openvino=openvino and openvino_available(),
                           compile_=compile_ and s <= 160, on_step=on_step)
    return rows


def _levers_at(
    ref_net: torch.nn.Module, cl_net: torch.nn.Module, s: int, *, repeats: int, openvino: bool,
    compile_: bool, on_step: Callable[[str], None] | None,
) -> list[LeverRow]:
    from satvsr_cli.engine.backend import OpenVINORunner
    from satvsr_cli.eval.protocol import count_gmac

    x = clip_of((s, s))[None]
    gmac = count_gmac(ref_net, x)
    rows: list[LeverRow] = []

    def add(lever: str, fn: Callable[[], Any], note: str = "") -> None:
        if on_step is not None:
            on_step(f"LR {s}²: {lever}")
        try:
            with torch.inference_mode():
                t = _best(fn, repeats)
        except Exception as exc:  # noqa: BLE001 - a lever that fails is reported, not fatal
            rows.append(LeverRow(s, lever, None, None, None, f"failed: {str(exc)[:80]}"))
            return
        ref = rows[0].ms if rows and rows[0].ms else None
        ms = 1000 * t
        rows.append(LeverRow(s, lever, ms, 2 * gmac / t if gmac else None,
                             (ref / ms) if ref else 1.0, note))

    def bf16(net: torch.nn.Module) -> Callable[[], Any]:
        def run() -> Any:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net(x)
        return run

    add("fp32 (reference)", lambda: ref_net(x))
    add("fp32 channels_last", lambda: cl_net(x))
    add("bf16 autocast", bf16(ref_net))
    add("bf16 autocast + channels_last", bf16(cl_net))
    if openvino:
        for prec in ("fp32", "bf16"):
            runner = OpenVINORunner(ref_net, prec)
            t0 = time.perf_counter()
            try:
                runner.prepare({"forward": (tuple(x.shape),)})
            except Exception as exc:  # noqa: BLE001
                rows.append(LeverRow(s, f"openvino {prec}", None, None, None,
                                     f"does not convert: {str(exc)[:80]}"))
                continue
            add(f"openvino {prec}", functools.partial(runner.forward, x),
                f"convert+compile {time.perf_counter() - t0:.1f} s (cached on disk)")
    if compile_:
        comp = torch.compile(cl_net, backend="inductor", dynamic=False)
        t0 = time.perf_counter()
        with torch.inference_mode():
            comp(x)
        add("torch.compile fp32 channels_last", lambda: comp(x),
            f"compile {time.perf_counter() - t0:.1f} s")
    return rows


@dataclass
class TileRow:
    """The engine at one tile size."""

    tile: str
    tiles_per_frame: int
    ms_per_frame: float
    us_per_lr_px: float
    user_s: float
    sys_s: float
    ratio: float = 1.0


def _engine(model: torch.nn.Module, runner: Any, tile: int | tuple[int, int] | None,
            overlap: int, precision: str) -> Any:
    from satvsr_cli.engine.convert import plan_bands
    from satvsr_cli.engine.infer import WindowUpscaler

    return WindowUpscaler(
        model, device=torch.device("cpu"), precision=precision, tile=tile, overlap=overlap,
        blend="cosine" if tile else "none", batch=1, cache_budget=256 << 20,
        bands=plan_bands(3), value_range=(0.0, 1.0), out_dtype="float32", runner=runner,
    )


def _run_engine(up: Any, frames_np: list[np.ndarray], n: int) -> list[np.ndarray]:
    from satvsr_cli.engine.windows import frame_indices
    from satvsr_cli.io.base import Frame

    fr = {i: Frame(i, a, None) for i, a in enumerate(frames_np)}
    outs = [up.upscale(c, frame_indices(c, n, 5, "centre"), fr) for c in range(n)]
    up.clear_cache()
    return outs


def tile_rows(
    model: torch.nn.Module,
    frame: tuple[int, int],
    tiles: list[int | None],
    *,
    backend: str,
    precision: str,
    frames: int = 5,
    overlap: int | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[TileRow]:
    """Engine ms per frame for each tile size (``None`` = whole frame), same runner kind."""
    from satvsr_cli.engine.backend import make_runner

    clip = clip_of(frame, frames)
    frames_np = [f.permute(1, 2, 0).contiguous().numpy() for f in clip]
    net = copy.deepcopy(model).eval()
    runner = make_runner(backend, net, torch.device("cpu"), precision)
    rows: list[TileRow] = []
    for tile in tiles:
        if on_step is not None:
            on_step(f"tiles {frame[0]}x{frame[1]}: {tile or 'whole'}")
        ov = 0 if tile is None else (min(32, tile // 4) if overlap is None else overlap)
        up = _engine(net, runner, tile, ov, precision)
        _run_engine(up, frames_np[:3], 1)  # warm-up (and OpenVINO conversion)
        u0, s0 = _cpu_times()
        t0 = time.perf_counter()
        _run_engine(up, frames_np, frames)
        wall = time.perf_counter() - t0
        u1, s1 = _cpu_times()
        assert up.plan is not None
        rows.append(TileRow(
            "whole" if tile is None else f"{tile}", up.plan.n_tiles, 1000 * wall / frames,
            1e6 * wall / frames / (frame[0] * frame[1]), u1 - u0, s1 - s0))
    base = next((r.ms_per_frame for r in rows if r.tile == "whole"), rows[0].ms_per_frame)
    for r in rows:
        r.ratio = base / r.ms_per_frame
    return rows


@dataclass
class Headline:
    """The engine with its defaults against the fixed reference path."""

    lr: int
    frames: int
    backend: str
    precision: str
    precision_reason: str
    tile: str
    engine_fps: float
    reference_fps: float
    speedup: float
    max_abs_diff: float
    gmac_per_frame: float | None
    engine_gflops: float | None
    reference_gflops: float | None
    psnr_change: dict[str, Any] = field(default_factory=dict)


def default_engine(
    model: torch.nn.Module, frame: tuple[int, int], *, backend: str = "auto",
    precision: str = "auto", threads: int | None = None, tile: int | str | None = "auto",
    warn: Callable[[str], None] | None = None,
) -> tuple[Any, str, str]:
    """A WindowUpscaler as ``satvsr upscale`` builds it with its defaults, on a copy of the
    model (the reference keeps its contiguous fp32 weights). Returns (engine, precision, why)."""
    from satvsr_cli.engine.backend import engine_shapes, job_compute, open_runner
    from satvsr_cli.engine.memory import auto_tile, bytes_per_lr_pixel, device_available
    from satvsr_cli.engine.precision import choose_precision, weights_precision

    dev = torch.device("cpu")
    net = copy.deepcopy(model).eval()
    object.__setattr__(net, "weights_manifest", getattr(model, "weights_manifest", None))
    _n, chosen, prec, why = job_compute(backend, precision, threads, dev, net)
    m = int(getattr(net, "size_multiple", 1) or 1)
    if tile == "auto":
        from satvsr_cli.engine.cpu import cpu_tile_cap
        from satvsr_cli.engine.memory import balanced_tile

        name = getattr(getattr(model, "weights_manifest", None), "network", None)
        per_px = bytes_per_lr_pixel(net, name, half=prec != "fp32")  # as upscale estimates it
        side = auto_tile(int(0.3 * device_available(dev)), per_px, 1, m, frame,
                         cpu_tile_cap(chosen))
        tile_v: int | tuple[int, int] | None = balanced_tile(side, frame, m)
    else:
        tile_v = tile if isinstance(tile, int) and tile > 0 else None  # 0: whole frame
    side_min = None if tile_v is None else (tile_v if isinstance(tile_v, int) else min(tile_v))
    overlap = 0 if side_min is None else min(32, side_min // 4)
    up = _engine(net, None, tile_v, overlap, prec)
    plan = up.set_frame_size(*frame)
    up.runner = open_runner(
        backend, net, dev, shapes=engine_shapes(net, (plan.tile_height, plan.tile_width), 1, 1),
        precision_for=lambda b: choose_precision(precision, dev, b, weights_precision(net))[0],
        threads=threads, warn=warn)
    up.precision = up.runner.precision
    if up.runner.name != chosen:
        why = f"{why}; fell back to torch"
    return up, up.runner.precision, why


def engine_vs_reference(
    model: torch.nn.Module, lr: int, *, frames: int = 6, repeats: int = 1,
    backend: str = "auto", precision: str = "auto", threads: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> Headline:
    """See the module docstring; both paths on the same synthetic clip, best of ``repeats``."""
    from satvsr_cli.engine.precision import weights_precision
    from satvsr_cli.eval.protocol import count_gmac, predict_windows

    ref_net = copy.deepcopy(model).float().eval()
    clip = clip_of((lr, lr), frames)
    frames_np = [f.permute(1, 2, 0).contiguous().numpy() for f in clip]
    up, prec, why = default_engine(model, (lr, lr), backend=backend, precision=precision,
                                   threads=threads, warn=warn)
    with torch.inference_mode():
        gmac = count_gmac(ref_net, clip[[0, 0, 0, 1, 2]][None])

    def reference() -> list[np.ndarray]:
        with torch.inference_mode():
            return [o.float().numpy() for _, o in predict_windows(
                ref_net, clip, list(range(frames)), n_total=frames, batch_size=1,
                share_features=False)]

    _run_engine(up, frames_np[:3], 1)  # warm-up
    t_ref = t_eng = math.inf
    ref_out: list[np.ndarray] = []
    eng_out: list[np.ndarray] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        ref_out = reference()
        t_ref = min(t_ref, time.perf_counter() - t0)
        t0 = time.perf_counter()
        eng_out = _run_engine(up, frames_np, frames)
        t_eng = min(t_eng, time.perf_counter() - t0)
    diff = max(float(np.abs(np.clip(a, 0, 1) - b).max()) for a, b in zip(ref_out, eng_out,
                                                                           strict=True))
    record = weights_precision(model) or {}
    change = {}
    if prec == "bf16":
        change = dict((record.get("results") or {}).get(up.runner.name, {}))
    assert up.plan is not None
    return Headline(
        lr=lr, frames=frames, backend=up.runner.describe(), precision=prec,
        precision_reason=why, tile=f"{up.plan.tile_height}x{up.plan.tile_width}"
        f" ({up.plan.n_tiles}/frame)", engine_fps=frames / t_eng, reference_fps=frames / t_ref,
        speedup=t_ref / t_eng, max_abs_diff=diff, gmac_per_frame=gmac,
        engine_gflops=2 * gmac * frames / t_eng if gmac else None,
        reference_gflops=2 * gmac * frames / t_ref if gmac else None,
        psnr_change={k: v.get("delta_db") for k, v in change.items()},
    )


def end_to_end(
    weights: str | None, *, frames: int = 96, lr: int = 160, workdir: Path,
    backend: str = "auto", threads: int | None = None,
) -> dict[str, Any]:
    """A whole ``satvsr upscale`` job on ``frames`` PNG frames against a plain fp32 ``model(x)``
    loop over the same frames (decoded first, one full forward per window, batch 1)."""
    import imageio.v3 as iio

    from satvsr_cli.engine.config import UpscaleConfig
    from satvsr_cli.engine.run import upscale
    from satvsr_cli.engine.windows import frame_indices
    from satvsr_cli.weights import resolve_model

    src = workdir / "e2e_lr"
    src.mkdir(parents=True, exist_ok=True)
    clip = clip_of((lr, lr), frames, seed=1)
    for i, f in enumerate(clip):
        iio.imwrite(src / f"{i:04d}.png", (f.permute(1, 2, 0).numpy() * 255).round()
                    .astype(np.uint8))
    cfg = UpscaleConfig.from_flags(input=str(src), output=str(workdir / "e2e_x4"), weights=weights,
                        overwrite=True, backend=backend, threads=threads)
    t0 = time.perf_counter()
    summary = upscale(cfg)
    job_wall = time.perf_counter() - t0

    net, _label, _sha = resolve_model(None, weights, "cpu")
    t0 = time.perf_counter()
    decoded = [iio.imread(p) for p in sorted(src.glob("*.png"))]
    x = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        for c in range(frames):
            net(x[frame_indices(c, frames, 5, "centre")][None])
    loop_wall = time.perf_counter() - t0
    return {
        "frames": frames, "lr": lr, "job_wall_s": job_wall, "job_fps": frames / job_wall,
        "loop_wall_s": loop_wall, "loop_fps": frames / loop_wall,
        "ratio": loop_wall / job_wall, "backend": summary.backend,
        "precision": summary.precision, "tile": list(summary.tile),
        "peak_rss_mib": summary.peak_rss_bytes / 2**20,
    }


def engine_run_fn(
    model: torch.nn.Module, frame: tuple[int, int], *, backend: str = "auto",
    precision: str = "auto", threads: int | None = None, tile: int | str | None = "auto",
) -> tuple[str, Callable[[list[np.ndarray], Any, int], list[np.ndarray]], str, str]:
    """For ``satvsr benchmark --speed``: the engine as ``satvsr upscale`` runs it, as
    ``(label, run(frames, centres, n_total), precision, reason)``."""
    from satvsr_cli.engine.windows import frame_indices
    from satvsr_cli.io.base import Frame

    up, prec, why = default_engine(model, frame, backend=backend, precision=precision,
                                   threads=threads, tile=tile)

    def run(frames: list[np.ndarray], centres: Any, n_total: int) -> list[np.ndarray]:
        fr = {i: Frame(i, a, None) for i, a in enumerate(frames)}
        outs = []
        for c in centres:
            outs.append(up.upscale(c, frame_indices(c, n_total, 5, "centre"), fr))
            up.forget(c - 2)
        up.clear_cache()
        return outs

    assert up.plan is not None
    label = (f"satvsr_cli.engine ({up.runner.describe()}, tile {up.plan.tile_height}x"
             f"{up.plan.tile_width}, {up.plan.n_tiles}/frame)")
    return label, run, prec, why
