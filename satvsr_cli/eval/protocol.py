"""The evaluation protocol: reading a clip, predicting every frame, scoring it (prints nothing).

The protocol is the MSDTGP/LGTD papers' one (``docs/networks.md`` §11) unless an option changes it:

- every frame of every clip; neighbours outside the clip are replaced by the centre frame
  (``temporal_padding="centre"``; ``"reflect"`` and ``"replicate"`` are options);
- the prediction is the network's float output × the data range (255 for uint8), **unclamped and
  unquantised** (``quantize=True`` clamps and rounds it to the GT dtype first, i.e. scores what a
  saved PNG holds);
- PSNR and MATLAB-style SSIM on RGB over the full frame (``y_channel``/``crop_border`` options),
  per frame, then the mean per clip, then the mean over clips;
- bicubic is ``imresize(LR, 4)`` (MATLAB bicubic, clamped borders) rounded to uint8;
- LR frames come from ``LR4x`` when present, otherwise (or with ``lr_from_gt``) from
  ``imresize(GT, 1/4)``, which is bit-exact against the official Jilin-189 LR.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from satvsr_cli.engine.windows import frame_indices
from satvsr_cli.errors import InputError, SatvsrError
from satvsr_cli.eval.report import ClipResult, MethodResult
from satvsr_cli.eval.runtime import PeakMemory, autocast_for, sync
from satvsr_cli.jilin import Clip
from satvsr_cli.metrics import psnr, ssim
from satvsr_cli.options import TemporalPadding, choice
from satvsr_cli.resize import imresize

if TYPE_CHECKING:
    import torch


SCALE = 4


N_FRAMES = 5


BICUBIC = "bicubic"


LR_FROM_FILES = "LR4x files"


LR_FROM_GT = "imresize(GT, 1/4, bicubic, clamped borders)"


ProgressFn = Callable[[str, str, int, int], None]
"""``progress(method, clip, frames_done, frames_total)``, called after each scored frame."""


def read_frame(path: Path) -> npt.NDArray[Any]:
    """Read an image as ``(H, W, 3)`` uint8/uint16 (grey is repeated, an alpha channel dropped)
    with the project's one frame reader, :func:`satvsr_cli.io.frames.read_rgb`.

    Raises:
        InputError: unreadable file, unsupported dtype or channel count.
    """
    from satvsr_cli.io.frames import read_rgb

    return read_rgb(path)


def data_range_of(dtype: np.dtype[Any]) -> float:
    """The peak value used for PSNR/SSIM and to scale network inputs: 255 or 65535."""
    return float(np.iinfo(dtype).max)


@dataclass
class LoadedClip:
    """LR frames of one clip (the frames the scored centres need), plus how they were made."""

    clip: Clip
    lr: list[npt.NDArray[Any]]
    n_total: int
    n_eval: int
    lr_source: str
    gt_shape: tuple[int, ...]
    dtype: np.dtype[Any]


def load_lr(clip: Clip, *, lr_from_gt: bool, max_frames: int | None,
            lr_codec: tuple[str, int] | None = None) -> LoadedClip:
    """Read (or make) the LR frames needed to score the first ``max_frames`` centres.

    With ``lr_codec`` (codec, CRF) the clip's LR frames are coded as one video and decoded
    (:func:`satvsr_cli.io.lossy.code_frames`, the recipe of a user's mp4) before scoring; the
    whole clip is coded, so the result does not depend on ``max_frames``.
    """
    n_total = len(clip.gt)
    n_eval = n_total if max_frames is None else min(n_total, max_frames)
    n_load = min(n_total, n_eval + N_FRAMES // 2)  # neighbours of the last scored centre
    if lr_codec is not None:
        n_load = n_total
    use_gt = lr_from_gt or clip.lr is None
    gt0 = read_frame(clip.gt[0])
    lr: list[npt.NDArray[Any]] = []
    for i in range(n_load):
        if use_gt:
            gt = gt0 if i == 0 else read_frame(clip.gt[i])
            if gt.shape != gt0.shape:
                raise InputError(f"{clip.gt[i]}: size {gt.shape[:2]} differs from {gt0.shape[:2]}")
            lr.append(imresize(gt, 1.0 / SCALE))
        else:
            assert clip.lr is not None
            lr.append(read_frame(clip.lr[i]))
    h, w = gt0.shape[:2]
    if h % SCALE or w % SCALE:
        raise InputError(f"{clip.gt[0]}: GT size {w}×{h} is not a multiple of {SCALE}")
    expected = (h // SCALE, w // SCALE, 3)
    for i, f in enumerate(lr):
        if f.shape != expected:
            raise InputError(
                f"{(clip.lr or clip.gt)[i]}: LR size {f.shape[1]}×{f.shape[0]} is not GT/{SCALE} "
                f"({expected[1]}×{expected[0]})"
            )
        if f.dtype != gt0.dtype:
            raise InputError(f"{(clip.lr or clip.gt)[i]}: LR is {f.dtype}, GT is {gt0.dtype}")
    source = LR_FROM_GT if use_gt else LR_FROM_FILES
    if lr_codec is not None:
        from satvsr_cli.io.lossy import code_frames

        if gt0.dtype != np.uint8:
            raise InputError(f"{clip.gt[0]}: --lr-codec needs 8-bit frames, got {gt0.dtype}")
        lr = list(code_frames(np.stack(lr), lr_codec[0], lr_codec[1]))
        source += f", coded {lr_codec[0]} crf {lr_codec[1]}"
    return LoadedClip(
        clip=clip,
        lr=lr,
        n_total=n_total,
        n_eval=n_eval,
        lr_source=source,
        gt_shape=gt0.shape,
        dtype=gt0.dtype,
    )


def read_gt(loaded: LoadedClip, i: int) -> npt.NDArray[Any]:
    gt = read_frame(loaded.clip.gt[i])
    if gt.shape != loaded.gt_shape or gt.dtype != loaded.dtype:
        raise InputError(f"{loaded.clip.gt[i]}: {gt.shape} {gt.dtype} differs from the first frame")
    return gt


def score(
    pred: npt.NDArray[Any],
    gt: npt.NDArray[Any],
    path: Path,
    data_range: float,
    crop_border: int,
    y_channel: bool,
) -> tuple[float, float]:
    """PSNR and SSIM of one frame; a frame too small for the options is a one-line InputError."""
    try:
        kw: dict[str, Any] = {
            "data_range": data_range,
            "crop_border": crop_border,
            "y_channel": y_channel,
        }
        return psnr(pred, gt, **kw), ssim(pred, gt, **kw)
    except ValueError as exc:
        raise InputError(f"{path}: cannot score this frame: {exc}") from None


def has_engine_api(model: torch.nn.Module) -> bool:
    return callable(getattr(model, "extract", None)) and callable(
        getattr(model, "forward_window", None)
    )


def predict_windows(
    model: torch.nn.Module,
    frames: torch.Tensor,
    centres: Sequence[int],
    *,
    n_total: int,
    temporal_padding: str = "centre",
    batch_size: int = 1,
    share_features: bool = True,
    static: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Super-resolve the frames ``centres`` of a clip, in order, one window per centre.

    With ``share_features`` (the engine path) and a network that has ``extract`` /
    ``forward_window``, each frame's features are computed once and reused by the (up to 5)
    windows that contain it, ``batch_size`` windows at a time; the frames are padded to the
    network's ``size_multiple`` exactly as its ``forward`` pads them, so the output equals
    ``model(window)``. Otherwise (the reference path, or a network without that API) every window
    is one full ``model(window)`` forward.

    Args:
        model: the network, in eval mode, on the device of ``frames``.
        frames: ``(T, 3, h, w)`` float LR frames in [0, 1]; frame ``i`` of the clip is
            ``frames[i]`` (only frames that the centres' windows touch need to be valid).
        centres: the output frames to produce (increasing).
        n_total: the clip length (for the temporal padding at its ends).
        temporal_padding: ``centre`` (papers), ``reflect`` or ``replicate``.
        batch_size: windows per forward.
        share_features: use the engine path when the network allows it.
        static: five copies of the centre frame instead of the real window (the
            temporal ablation: what the network makes of one frame alone).

    Yields:
        ``(centre, (3, 4h, 4w) float tensor)`` on the device, unclamped.
    """
    import torch

    h, w = frames.shape[-2:]
    scale = int(getattr(model, "scale", SCALE))
    pad = cast(TemporalPadding, temporal_padding)
    windows = [[c] * N_FRAMES if static else frame_indices(c, n_total, N_FRAMES, pad)
               for c in centres]
    bs = max(1, int(batch_size))
    if not (share_features and has_engine_api(model)):
        for s in range(0, len(centres), bs):
            idx = torch.tensor(windows[s : s + bs], device=frames.device)
            out = model(frames[idx])
            for k, c in enumerate(centres[s : s + bs]):
                yield c, out[k]
        return
    from satvsr_cli.models.blocks import pad_to_multiple

    mult = int(getattr(model, "size_multiple", 1) or 1)
    padded = pad_to_multiple(frames, mult)
    cache: dict[int, torch.Tensor] = {}
    extract = model.extract
    forward_window = model.forward_window
    for s in range(0, len(centres), bs):
        rows = windows[s : s + bs]
        need = sorted({i for row in rows for i in row} - cache.keys())
        if need:
            feats_new = extract(padded[torch.tensor(need, device=frames.device)])  # type: ignore[operator]
            cache.update(zip(need, feats_new.unbind(0), strict=True))
        clip = padded[torch.tensor(rows, device=frames.device)]
        feats = torch.stack([torch.stack([cache[i] for i in row]) for row in rows])
        out = forward_window(clip, feats)[..., : scale * h, : scale * w]  # type: ignore[operator]
        for k, c in enumerate(centres[s : s + bs]):
            yield c, out[k]
        if s + bs < len(centres):  # drop features no later window can use
            lowest = min(min(r) for r in windows[s + bs :])
            for i in [i for i in cache if i < lowest]:
                del cache[i]


def count_gmac(model: torch.nn.Module, window: torch.Tensor) -> float | None:
    """GMAC of one full forward on ``window`` ``(1, 5, 3, h, w)``, counted by
    :func:`satvsr_cli.models.flops.count_gmac` on that very window.

    Runs the forward for real (it doubles as the warm-up); returns ``None`` if counting fails.
    """
    from satvsr_cli.models.flops import count_gmac as count

    try:
        return count(model, int(window.shape[-2]), int(window.shape[-1]), clip=window)
    except Exception:  # noqa: BLE001  (an untraceable network: report no MACs, keep going)
        return None


def to_numpy_pred(
    out: torch.Tensor, data_range: float, quantize: bool, dtype: np.dtype[Any]
) -> npt.NDArray[Any]:
    """``(3, H, W)`` float in [0, 1] → ``(H, W, 3)`` float64 × data range (or quantised ints)."""
    arr = out.detach().float().cpu().numpy().transpose(1, 2, 0).astype(np.float64) * data_range
    if quantize:
        return np.clip(np.round(arr), 0, data_range).astype(dtype)
    return arr


def evaluate_model(
    model: torch.nn.Module,
    clips: list[Clip],
    *,
    device: str | torch.device = "cpu",
    y_channel: bool = False,
    crop_border: int = 0,
    temporal_padding: str = "centre",
    lr_from_gt: bool = False,
    max_frames: int | None = None,
    precision: str = "fp32",
    quantize: bool = False,
    batch_size: int = 1,
    name: str = "model",
    measure: bool = False,
    progress: ProgressFn | None = None,
    lr_codec: tuple[str, int] | None = None,
    ablate_window: bool = False,
) -> MethodResult:
    """Score a network on clips (the papers' protocol by default); usable for validation.

    The network is run in eval mode under ``torch.inference_mode`` and its previous train/eval
    mode is restored afterwards; it is moved to ``device`` if it is elsewhere. Without
    ``measure`` nothing global is touched (the peak-memory counters are only reset to measure).

    Args:
        model: a satvsr network (``(B, 5, 3, h, w)`` in [0, 1] → ``(B, 3, 4h, 4w)``).
        clips: from :func:`satvsr_cli.jilin.find_clips`.
        device: where to run it.
        y_channel: score BT.601 luma (MATLAB ``rgb2ycbcr``) instead of RGB.
        crop_border: HR pixels removed from every side before scoring.
        temporal_padding: ``centre`` (papers), ``reflect`` or ``replicate``.
        lr_from_gt: make LR from GT with the bit-exact ``imresize(GT, 1/4)`` even if ``LR4x`` exists.
        max_frames: score only the first N frames of each clip (their neighbours are still used).
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast).
        quantize: clamp and round the prediction to the GT dtype before scoring.
        batch_size: windows per forward.
        name: the method name in the result.
        measure: also measure parameters, GMAC, model-only time (after a warm-up), end-to-end
            fps and peak memory (costs two extra forwards per LR size: the MAC count and a warm-up).
        progress: optional per-frame callback.
        lr_codec: code the LR clip as a video first (see :func:`load_lr`).
        ablate_window: also score every frame with five copies of its centre frame (untimed)
            and report the temporal contribution (:attr:`MethodResult.window_gain_db`).

    Returns:
        The per-clip and mean scores (and costs when ``measure``).
    """
    import torch

    temporal_padding = choice(TemporalPadding, temporal_padding)
    dev = torch.device(device)
    autocast = autocast_for(dev, precision, model)  # validates precision
    params = sum(p.numel() for p in model.parameters())
    first = next(model.parameters(), None)
    if first is not None and first.device != dev:
        model.to(dev)
    was_training = model.training
    model.eval()
    result = MethodResult(
        method=name,
        kind="network",
        device=str(dev),
        precision=precision,
        params=params if measure else None,
    )
    model_s = 0.0
    wall_excluded = 0.0  # scoring and warm-up: not part of the end-to-end time
    warm_sizes: dict[tuple[int, int], float | None] = {}
    # only when measuring: resetting the peak counters would disturb a caller's own statistics
    mem = PeakMemory(dev) if measure else None
    try:
        with mem or contextlib.nullcontext(), torch.inference_mode():
            t_start = time.perf_counter()
            for clip in clips:
                loaded = load_lr(clip, lr_from_gt=lr_from_gt, max_frames=max_frames,
                                 lr_codec=lr_codec)
                data_range = data_range_of(loaded.dtype)
                lr_np = np.stack(loaded.lr).astype(np.float32) / np.float32(data_range)
                frames = torch.from_numpy(lr_np).permute(0, 3, 1, 2).contiguous().to(dev)
                lr_hw = (int(frames.shape[-2]), int(frames.shape[-1]))
                if measure and lr_hw not in warm_sizes:
                    t0 = time.perf_counter()
                    win_idx = frame_indices(
                        0, loaded.n_total, N_FRAMES, cast(TemporalPadding, temporal_padding)
                    )
                    with autocast:
                        warm_sizes[lr_hw] = count_gmac(model, frames[win_idx][None])
                        # plus one plain untimed pass: the first calls after the counter are slow
                        for _ in predict_windows(
                            model,
                            frames,
                            [0],
                            n_total=loaded.n_total,
                            temporal_padding=temporal_padding,
                        ):
                            pass
                    sync(dev)
                    wall_excluded += time.perf_counter() - t0
                fp: list[float] = []
                fs: list[float] = []
                gen = predict_windows(
                    model,
                    frames,
                    range(loaded.n_eval),
                    n_total=loaded.n_total,
                    temporal_padding=temporal_padding,
                    batch_size=batch_size,
                )
                while True:
                    sync(dev)
                    t0 = time.perf_counter()
                    with autocast:
                        item = next(gen, None)
                    sync(dev)
                    model_s += time.perf_counter() - t0
                    if item is None:
                        break
                    c, out = item
                    pred = to_numpy_pred(out, data_range, quantize, loaded.dtype)
                    t0 = time.perf_counter()
                    gt = read_gt(loaded, c)
                    p_val, s_val = score(
                        pred, gt, loaded.clip.gt[c], data_range, crop_border, y_channel
                    )
                    fp.append(p_val)
                    fs.append(s_val)
                    wall_excluded += time.perf_counter() - t0
                    if progress is not None:
                        progress(name, clip.name, len(fp), loaded.n_eval)
                result.clips.append(
                    clip_result(
                        clip.name,
                        fp,
                        fs,
                        lr_hw,
                        loaded.lr_source,
                        warm_sizes.get(lr_hw) if measure else None,
                    )
                )
                if ablate_window:
                    t0 = time.perf_counter()
                    static = []
                    with autocast:
                        for c, out in predict_windows(
                            model, frames, range(loaded.n_eval), n_total=loaded.n_total,
                            temporal_padding=temporal_padding, batch_size=batch_size,
                            static=True,
                        ):
                            pred = to_numpy_pred(out, data_range, quantize, loaded.dtype)
                            static.append(score(pred, read_gt(loaded, c), loaded.clip.gt[c],
                                                data_range, crop_border, y_channel)[0])
                    result.static_psnr[clip.name] = float(np.mean(static))
                    wall_excluded += time.perf_counter() - t0
            wall = time.perf_counter() - t_start
    except torch.cuda.OutOfMemoryError:
        raise SatvsrError(
            f"{name}: out of GPU memory; try --batch-size 1 or a smaller clip"
        ) from None
    finally:
        model.train(was_training)
    if measure and result.frames:
        result.ms_per_frame = 1000.0 * model_s / result.frames
        e2e = wall - wall_excluded
        result.fps_end_to_end = result.frames / e2e if e2e > 0 else None
        result.peak_mem_mb = mem.peak_mb() if mem is not None else None
    return result


def clip_result(
    name: str,
    fp: list[float],
    fs: list[float],
    lr_hw: tuple[int, int],
    lr_source: str,
    gmac: float | None,
) -> ClipResult:
    return ClipResult(
        clip=name,
        frames=len(fp),
        psnr=float(np.mean(fp)),
        ssim=float(np.mean(fs)),
        frame_psnr=tuple(fp),
        frame_ssim=tuple(fs),
        lr_size=lr_hw,
        lr_source=lr_source,
        gmac_per_frame=gmac,
    )


def evaluate_bicubic(
    clips: list[Clip],
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    lr_from_gt: bool = False,
    max_frames: int | None = None,
    border: str = "clamp",
    progress: ProgressFn | None = None,
    lr_codec: tuple[str, int] | None = None,
) -> MethodResult:
    """Score the bicubic baseline: ``imresize(LR, 4)`` (MATLAB bicubic) rounded to the GT dtype.

    ``ms_per_frame`` is the resize time, ``fps_end_to_end`` adds reading (or making) the LR
    frames; the peak memory is the CPU peak-RSS growth (see the module doc).
    """
    result = MethodResult(
        method=BICUBIC, kind="baseline", params=0, device="cpu", precision="float64"
    )
    import torch

    resize_s = 0.0
    excluded = 0.0
    with PeakMemory(torch.device("cpu")) as mem:
        t_start = time.perf_counter()
        for clip in clips:
            loaded = load_lr(clip, lr_from_gt=lr_from_gt, max_frames=max_frames,
                             lr_codec=lr_codec)
            data_range = data_range_of(loaded.dtype)
            fp: list[float] = []
            fs: list[float] = []
            for i in range(loaded.n_eval):
                t0 = time.perf_counter()
                pred = imresize(loaded.lr[i], SCALE, border=border)
                t1 = time.perf_counter()
                resize_s += t1 - t0
                gt = read_gt(loaded, i)
                p_val, s_val = score(pred, gt, clip.gt[i], data_range, crop_border, y_channel)
                fp.append(p_val)
                fs.append(s_val)
                excluded += time.perf_counter() - t1
                if progress is not None:
                    progress(BICUBIC, clip.name, len(fp), loaded.n_eval)
            lr_hw = (int(loaded.lr[0].shape[0]), int(loaded.lr[0].shape[1]))
            result.clips.append(clip_result(clip.name, fp, fs, lr_hw, loaded.lr_source, None))
        wall = time.perf_counter() - t_start
        if result.frames:
            result.ms_per_frame = 1000.0 * resize_s / result.frames
            result.fps_end_to_end = result.frames / max(wall - excluded, 1e-9)
            result.peak_mem_mb = mem.peak_mb()
    return result
