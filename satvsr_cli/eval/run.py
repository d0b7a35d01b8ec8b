"""An evaluation run: bicubic and every requested network on a Jilin-189 style test set."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from satvsr_cli.errors import InputError, ModelError, WeightsError
from satvsr_cli.eval.protocol import (
    BICUBIC,
    LR_FROM_FILES,
    LR_FROM_GT,
    ProgressFn,
    evaluate_bicubic,
    evaluate_model,
    read_frame,
)
from satvsr_cli.eval.report import BenchmarkReport, MethodResult, versions
from satvsr_cli.eval.runtime import device_name, resolve_device
from satvsr_cli.io.lossy import ENCODERS, parse_codec
from satvsr_cli.jilin import Clip, find_clips
from satvsr_cli.metrics import SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW
from satvsr_cli.options import Precision, TemporalPadding, choice

if TYPE_CHECKING:
    import torch


#: the ffmpeg encoder of each ``--lr-codec`` name, for the settings record
CODEC_RECIPE = {name: f"-c:v {enc}" for name, enc in ENCODERS.items()}


@dataclass(frozen=True)
class ModelRequest:
    """A network row to benchmark: a registry name, a weights file, or a ready model (tests)."""

    name: str | None = None
    weights: str | Path | None = None


def weights_source(loaded: object, weights: str | Path | None) -> str | None:
    """Where a row's weights come from: the path as given, or ``shipped ID`` (``None``: untrained)."""
    from satvsr_cli import weights as wmod

    if weights is not None:
        return str(weights)
    manifest = getattr(loaded, "manifest", None)
    if manifest is None:
        return None
    return f"shipped {wmod.weights_id(manifest.path)}"


def unique_labels(labels: Sequence[str], sources: Sequence[str | None]) -> list[str]:
    """Row labels made unique, so that results, the sha256 map and tables name one row each.

    A label used by several rows (e.g. ``lgtd_small (lgtd_small.v1.safetensors)`` for the
    shipped file and for a file of the same name elsewhere) names its source instead of the
    file name: ``lgtd_small (shipped lgtd_small.v1)``, ``lgtd_small (other/lgtd_small.v1.safetensors)``.
    Rows that still share a label (the same file twice, two untrained networks) get `` #2``,
    `` #3``... in order. Unique labels are kept as they are.
    """
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    named = []
    for label, source in zip(labels, sources, strict=True):
        if counts[label] > 1 and source is not None:
            base = label[: label.rindex(" (")] if label.endswith(")") and " (" in label else label
            label = f"{base} ({source})"
        named.append(label)
    out: list[str] = []
    for label in named:
        candidate, k = label, 1
        while candidate in out:
            k += 1
            candidate = f"{label} #{k}"
        out.append(candidate)
    return out


def _lr_source_summary(clips: list[Clip], lr_from_gt: bool) -> str:
    from_gt = [c.name for c in clips if lr_from_gt or c.lr is None]
    if not from_gt:
        return LR_FROM_FILES
    if len(from_gt) == len(clips):
        return LR_FROM_GT
    return f"{LR_FROM_FILES}; {LR_FROM_GT} for clips {', '.join(from_gt)}"


def evaluate(
    data: str | Path,
    *,
    models: Sequence[str] = (),
    weights: Sequence[str | Path] = (),
    allow_random: bool = False,
    include_default: bool = True,
    device: str = "auto",
    precision: str = "fp32",
    y_channel: bool = False,
    crop_border: int = 0,
    temporal_padding: str = "centre",
    lr_from_gt: bool = False,
    max_frames: int | None = None,
    quantize: bool = False,
    batch_size: int = 1,
    progress: ProgressFn | None = None,
    on_method: Callable[[str], None] | None = None,
    lr_codec: str | None = None,
    ablate_window: bool = False,
    compare_png: str | Path | None = None,
    compare_frame: int | None = None,
) -> BenchmarkReport:
    """Benchmark bicubic and networks on a Jilin-189 style folder.

    Args:
        data: ``DIR`` with ``GT/`` (and optionally ``LR4x/``), or ``DIR/eval`` / ``DIR/test_set``.
        models: registry names; each loads the shipped weights for that name (or a random
            initialisation with ``allow_random``, labelled "(random init)").
        weights: weights files (``.safetensors`` with a manifest).
        allow_random: allow networks with no shipped weights.
        include_default: with no ``models``/``weights``, add the default shipped weights if any.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``fp32``, ``bf16`` or ``fp16`` for the networks.
        y_channel, crop_border, temporal_padding, lr_from_gt, max_frames, quantize, batch_size:
            see :func:`evaluate_model`.
        progress: per-frame callback. on_method: called with each method name before it runs.
        lr_codec: ``CODEC:CRF`` (``h264:23``): every method gets the LR clip coded as a
            user's mp4 (:func:`satvsr_cli.io.lossy.code_frames`), bicubic included.
        ablate_window: also score the networks with five copies of the centre frame and report
            the temporal contribution (``window_gain_db``).
        compare_png: write the comparison picture of one frame of the first clip there (LR
            nearest ×4 | bicubic | each network | GT, PSNR from the scores; see
            :mod:`satvsr_cli.eval.compare`). compare_frame: which frame (default: the middle
            scored frame).

    Raises:
        InputError: missing data or malformed clips. ModelError / WeightsError: bad networks.
    """
    from satvsr_cli import weights as wmod

    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {max_frames}")
    if crop_border < 0:
        raise InputError(f"--crop-border must be >= 0, got {crop_border}")
    codec = parse_codec(lr_codec) if lr_codec is not None else None
    temporal_padding = choice(TemporalPadding, temporal_padding)
    precision = choice(Precision, precision)
    root = Path(data)
    if not root.exists():
        raise InputError(f"{root}: no such data folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    clips = find_clips(root)
    if compare_png is not None:
        from satvsr_cli.eval.compare import check_compare_frame

        compare_frame = check_compare_frame(clips[0], compare_frame, max_frames)
    dev = resolve_device(device)
    if precision == Precision.auto:
        from satvsr_cli.device import resolve_precision

        precision = resolve_precision(precision, dev)

    requests: list[ModelRequest] = [ModelRequest(name=n) for n in models]
    requests += [ModelRequest(weights=p) for p in weights]
    nets: list[tuple[torch.nn.Module, str, str | None, str | None]] = []
    sources: list[str | None] = []
    if not requests and include_default and wmod.default_weights() is not None:
        loaded = wmod.resolve_model(None, None, dev)
        net, label, sha = loaded
        nets.append((net, label, sha, str(wmod.default_weights())))
        sources.append(weights_source(loaded, None))
    for req in requests:  # resolve everything before the first long computation
        if req.weights is not None and not wmod.find_weights(req.weights).exists():
            raise WeightsError(f"{req.weights}: weights file not found")
        loaded = wmod.resolve_model(req.name, req.weights, dev, allow_random=allow_random)
        net, label, sha = loaded
        manifest = getattr(loaded, "manifest", None)
        path = req.weights if req.weights is not None else getattr(manifest, "path", None)
        nets.append((net, label, sha, str(path) if path is not None else None))
        sources.append(weights_source(loaded, req.weights))
    labels = unique_labels([label for _, label, _, _ in nets], sources)
    nets = [(net, lab, sha, path) for (net, _, sha, path), lab in zip(nets, labels, strict=True)]

    settings: dict[str, Any] = {
        "data": str(root.resolve()),
        "clips": [c.name for c in clips],
        "frames_per_clip": {c.name: len(c) for c in clips},
        "max_frames": max_frames,
        "channel": "y" if y_channel else "rgb",
        "y_formula": "Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255 (MATLAB rgb2ycbcr, BT.601)"
        if y_channel
        else None,
        "crop_border": crop_border,
        "data_range": None,
        "psnr": "10·log10(L²/MSE) over H×W×C per frame; identical frames give inf",
        "ssim": {
            "window": SSIM_WINDOW,
            "sigma": SSIM_SIGMA,
            "k1": SSIM_K1,
            "k2": SSIM_K2,
            "region": "valid",
            "channels": "per channel, averaged",
        },
        "aggregation": "mean over the frames of a clip, then mean over clips",
        "prediction": "quantised: clamped and rounded to the GT dtype"
        if quantize
        else "float network output × L, unclamped, unquantised",
        "edge_mode": temporal_padding,
        "temporal_padding": temporal_padding,
        "lr_source": _lr_source_summary(clips, lr_from_gt),
        "lr_generator": "imresize(GT, 1/4): MATLAB bicubic, antialiased, a=-0.5, clamped borders",
        "lr_codec": None if codec is None else (
            f"{codec[0]} crf {codec[1]}: the clip's LR frames coded as one video with the "
            f"bundled ffmpeg ({CODEC_RECIPE[codec[0]]} -crf {codec[1]} -preset medium "
            "-pix_fmt yuv420p, 10 fps, one thread) and decoded, for every method"),
        "window_ablation": "psnr_static_window: five copies of the centre frame; "
        "window_gain_db = psnr − psnr_static_window" if ablate_window else None,
        "bicubic": "imresize(LR, 4): MATLAB bicubic, a=-0.5, clamped borders, rounded to uint8",
        "device": str(dev),
        "device_name": device_name(dev),
        "precision": precision,
        "batch_size": batch_size,
        "torch_threads": None,
        "timing": "ms_per_frame: model only, after warm-up forwards per LR size"
        + (", torch.cuda.synchronize around each step" if dev.type == "cuda" else "")
        + "; fps_end_to_end: reading/making LR + inference + conversion, scoring excluded",
        "macs": "GMAC of one full 5-frame forward per output frame at the clip's LR size, "
        "torch FlopCounterMode FLOPs / 2 (conv, linear, matmul; deformable sampling, "
        "element-wise ops and pooling not counted)",
        "peak_memory": "torch.cuda.max_memory_allocated (weights included)"
        if dev.type == "cuda"
        else "growth of the process peak RSS during the row (weights loaded before excluded)",
        "weights": [{"method": label, "path": path, "sha256": sha} for _, label, sha, path in nets],
        "weights_sha256": {label: sha for _, label, sha, _ in nets},
        "versions": versions(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    import torch

    settings["torch_threads"] = torch.get_num_threads()

    # Load the image decoder (rasterio/GDAL) before the first measured row, so that its one-off
    # memory is not counted as the peak memory of the bicubic row.
    read_frame(clips[0].gt[0])
    methods: list[MethodResult] = []
    if on_method is not None:
        on_method(BICUBIC)
    bic = evaluate_bicubic(
        clips,
        y_channel=y_channel,
        crop_border=crop_border,
        lr_from_gt=lr_from_gt,
        max_frames=max_frames,
        progress=progress,
        lr_codec=codec,
    )
    methods.append(bic)
    for net, label, sha, _ in nets:
        if on_method is not None:
            on_method(label)
        try:
            res = evaluate_model(
                net,
                clips,
                device=dev,
                y_channel=y_channel,
                crop_border=crop_border,
                temporal_padding=temporal_padding,
                lr_from_gt=lr_from_gt,
                max_frames=max_frames,
                precision=precision,
                quantize=quantize,
                batch_size=batch_size,
                name=label,
                measure=True,
                progress=progress,
                lr_codec=codec,
                ablate_window=ablate_window,
            )
        except RuntimeError as exc:  # e.g. an op unsupported in this precision on this device
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"{label} failed on {dev} in {precision}: {msg}") from None
        res.weights_sha256 = sha
        methods.append(res)
    dtypes = {str(np.dtype(read_frame(c.gt[0]).dtype)) for c in clips[:1]}
    settings["data_range"] = 65535.0 if "uint16" in dtypes else 255.0
    if compare_png is not None:
        from satvsr_cli.eval.compare import write_compare_png

        if on_method is not None:
            on_method("comparison picture")
        picture = write_compare_png(
            compare_png,
            clips[0],
            methods,
            [(net, label) for net, label, _, _ in nets],
            frame=compare_frame,
            device=dev,
            precision=precision,
            temporal_padding=temporal_padding,
            lr_from_gt=lr_from_gt,
            max_frames=max_frames,
        )
        settings["compare_png"] = picture.to_json()
    return BenchmarkReport(settings=settings, methods=methods)
