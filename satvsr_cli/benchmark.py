"""Quality, speed and memory of bicubic and of networks on a Jilin-189 style test set (prints nothing).

The protocol is the MSDTGP/LGTD papers' one (``docs/models.md`` §11) unless an option changes it:

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

Speed figures: ``ms_per_frame`` is the model-only time per output frame (tensor on the device in,
tensor on the device out, synchronised on CUDA, after untimed warm-up forwards per LR size);
``fps_end_to_end`` counts everything a user's run does (reading frames, making LR, moving data,
inference, converting back) but not the scoring; ``peak_mem_mb`` is
``torch.cuda.max_memory_allocated`` on CUDA (weights included) and, on CPU, the growth of the
process's peak resident set size during the row (``/proc/self/clear_refs`` resets the peak first
where Linux allows it; otherwise it is the growth of ``ru_maxrss``, a lower bound that reads 0 when
an earlier row already reached a higher peak). Weights loaded before the row are not counted on CPU.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast

import numpy as np
import numpy.typing as npt

from satvsr_cli import __version__
from satvsr_cli.engine.windows import frame_indices
from satvsr_cli.errors import InputError, ModelError, SatvsrError, WeightsError
from satvsr_cli.jilin import Clip, find_clips
from satvsr_cli.metrics import SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW, psnr, ssim
from satvsr_cli.options import Precision, TemporalPadding, choice
from satvsr_cli.resize import imresize

if TYPE_CHECKING:
    import torch

FORMAT = "satvsr-benchmark/1"
PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision if p != Precision.auto)
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
SCALE = 4
N_FRAMES = 5
BICUBIC = "bicubic"
LR_FROM_FILES = "LR4x files"
LR_FROM_GT = "imresize(GT, 1/4, bicubic, clamped borders)"

ProgressFn = Callable[[str, str, int, int], None]
"""``progress(method, clip, frames_done, frames_total)``, called after each scored frame."""


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ClipResult:
    """Scores of one method on one clip."""

    clip: str
    frames: int
    psnr: float
    ssim: float
    frame_psnr: tuple[float, ...]
    frame_ssim: tuple[float, ...]
    lr_size: tuple[int, int]
    lr_source: str
    gmac_per_frame: float | None = None


@dataclass
class MethodResult:
    """Scores and costs of one method (bicubic or a network) over every clip."""

    method: str
    clips: list[ClipResult] = field(default_factory=list)
    kind: str = "network"
    params: int | None = None
    ms_per_frame: float | None = None
    fps_end_to_end: float | None = None
    peak_mem_mb: float | None = None
    device: str = "cpu"
    precision: str = "fp32"
    weights_sha256: str | None = None

    @property
    def frames(self) -> int:
        """Frames scored over every clip."""
        return sum(c.frames for c in self.clips)

    @property
    def psnr(self) -> float:
        """Mean over clips of the per-clip mean PSNR (the papers' aggregation)."""
        return float(np.mean([c.psnr for c in self.clips])) if self.clips else math.nan

    @property
    def ssim(self) -> float:
        """Mean over clips of the per-clip mean SSIM."""
        return float(np.mean([c.ssim for c in self.clips])) if self.clips else math.nan

    @property
    def psnr_all_frames(self) -> float:
        """Mean PSNR over every frame of every clip (equal to :attr:`psnr` for equal clips)."""
        vals = [v for c in self.clips for v in c.frame_psnr]
        return float(np.mean(vals)) if vals else math.nan

    @property
    def ssim_all_frames(self) -> float:
        """Mean SSIM over every frame of every clip."""
        vals = [v for c in self.clips for v in c.frame_ssim]
        return float(np.mean(vals)) if vals else math.nan

    @property
    def gmac_per_frame(self) -> float | None:
        """Frame-weighted mean of the per-clip GMAC per output frame (one full 5-frame forward)."""
        known = [(c.gmac_per_frame, c.frames) for c in self.clips if c.gmac_per_frame is not None]
        if not known:
            return None
        return sum(g * n for g, n in known) / sum(n for _, n in known)


@dataclass
class BenchmarkReport:
    """Everything :func:`evaluate` measured, with the settings needed to reproduce it."""

    settings: dict[str, Any]
    methods: list[MethodResult]

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (non-finite floats become the strings "inf"/"nan")."""
        results = [
            {
                "method": m.method,
                "clip": c.clip,
                "frames": c.frames,
                "psnr": _num(c.psnr),
                "ssim": _num(c.ssim),
                "lr_size": list(c.lr_size),
                "lr_source": c.lr_source,
                "gmac_per_frame": _num(c.gmac_per_frame),
                "frame_psnr": [_num(v) for v in c.frame_psnr],
                "frame_ssim": [_num(v) for v in c.frame_ssim],
            }
            for m in self.methods
            for c in m.clips
        ]
        summary = [
            {
                "method": m.method,
                "kind": m.kind,
                "psnr": _num(m.psnr),
                "ssim": _num(m.ssim),
                "psnr_all_frames": _num(m.psnr_all_frames),
                "ssim_all_frames": _num(m.ssim_all_frames),
                "clips": len(m.clips),
                "frames": m.frames,
                "params": m.params,
                "gmac_per_frame": _num(m.gmac_per_frame),
                "ms_per_frame": _num(m.ms_per_frame),
                "fps_end_to_end": _num(m.fps_end_to_end),
                "peak_mem_mb": _num(m.peak_mem_mb),
                "device": m.device,
                "precision": m.precision,
                "weights_sha256": m.weights_sha256,
            }
            for m in self.methods
        ]
        return {"format": FORMAT, "settings": self.settings, "results": results, "summary": summary}


def _num(v: float | None) -> float | str | None:
    """A JSON-safe number: ``None`` stays, ``inf``/``nan`` become strings."""
    if v is None:
        return None
    f = float(v)
    if math.isfinite(f):
        return f
    return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")


# ---------------------------------------------------------------------------------- frames


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
class _LoadedClip:
    """LR frames of one clip (the frames the scored centres need), plus how they were made."""

    clip: Clip
    lr: list[npt.NDArray[Any]]
    n_total: int
    n_eval: int
    lr_source: str
    gt_shape: tuple[int, ...]
    dtype: np.dtype[Any]


def _load_lr(clip: Clip, *, lr_from_gt: bool, max_frames: int | None) -> _LoadedClip:
    """Read (or make) the LR frames needed to score the first ``max_frames`` centres."""
    n_total = len(clip.gt)
    n_eval = n_total if max_frames is None else min(n_total, max_frames)
    n_load = min(n_total, n_eval + N_FRAMES // 2)  # neighbours of the last scored centre
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
    return _LoadedClip(
        clip=clip,
        lr=lr,
        n_total=n_total,
        n_eval=n_eval,
        lr_source=LR_FROM_GT if use_gt else LR_FROM_FILES,
        gt_shape=gt0.shape,
        dtype=gt0.dtype,
    )


def _read_gt(loaded: _LoadedClip, i: int) -> npt.NDArray[Any]:
    gt = read_frame(loaded.clip.gt[i])
    if gt.shape != loaded.gt_shape or gt.dtype != loaded.dtype:
        raise InputError(f"{loaded.clip.gt[i]}: {gt.shape} {gt.dtype} differs from the first frame")
    return gt


def _score(
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


# ---------------------------------------------------------------------------------- memory


class _PeakMemory:
    """Peak memory of one row: CUDA allocator peak, or the CPU peak-RSS growth (see module doc)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start_rss_kb = 0

    def __enter__(self) -> Self:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            with contextlib.suppress(OSError):  # not Linux, or not allowed: ru_maxrss growth
                Path("/proc/self/clear_refs").write_text("5")
            self.start_rss_kb = _current_rss_kb() or _maxrss_kb()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def peak_mb(self) -> float:
        """The peak so far, in MiB."""
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return float(torch.cuda.max_memory_allocated(self.device)) / 2**20
        return max(0.0, (_maxrss_kb() - self.start_rss_kb) / 1024.0)


def _maxrss_kb() -> int:
    """Peak resident set size of this process in KiB (``ru_maxrss``; bytes on macOS; 0 on Windows)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r // 1024) if sys.platform == "darwin" else int(r)


def _current_rss_kb() -> int:
    """Current resident set size in KiB from ``/proc/self/status`` (0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


# ---------------------------------------------------------------------------------- devices


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without CUDA is an error.

    The engine's resolver (:func:`satvsr_cli.engine.device.resolve_device`, MPS left out of
    ``auto``); a device asked as ``auto`` or ``cuda`` keeps the plain name ``cuda`` in reports.
    """
    import torch

    from satvsr_cli.engine.device import resolve_device as engine_resolve

    dev = engine_resolve(device, mps=False)
    if dev.type == "cuda" and device.strip().lower() in ("auto", "cuda"):
        return torch.device("cuda")
    return dev


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for bf16/fp16, nothing for fp32."""
    import torch

    precision = choice(Precision, precision)
    if precision in (Precision.fp32, Precision.auto):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """A readable device name (GPU model, or the CPU's)."""
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------------------- inference


def _has_engine_api(model: torch.nn.Module) -> bool:
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

    Yields:
        ``(centre, (3, 4h, 4w) float tensor)`` on the device, unclamped.
    """
    import torch

    h, w = frames.shape[-2:]
    scale = int(getattr(model, "scale", SCALE))
    pad = cast(TemporalPadding, temporal_padding)
    windows = [frame_indices(c, n_total, N_FRAMES, pad) for c in centres]
    bs = max(1, int(batch_size))
    if not (share_features and _has_engine_api(model)):
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
    """GMAC of one full forward on ``window`` ``(1, 5, 3, h, w)`` (FlopCounterMode FLOPs / 2).

    Runs the forward for real (it doubles as the warm-up); returns ``None`` if counting fails.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(window)
    except Exception:  # noqa: BLE001  (an untraceable network: report no MACs, keep going)
        return None
    return float(counter.get_total_flops()) / 2e9


def _to_numpy_pred(
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

    Returns:
        The per-clip and mean scores (and costs when ``measure``).
    """
    import torch

    temporal_padding = choice(TemporalPadding, temporal_padding)
    dev = torch.device(device)
    autocast = _autocast(dev, precision)  # validates precision
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
    mem = _PeakMemory(dev) if measure else None
    try:
        with mem or contextlib.nullcontext(), torch.inference_mode():
            t_start = time.perf_counter()
            for clip in clips:
                loaded = _load_lr(clip, lr_from_gt=lr_from_gt, max_frames=max_frames)
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
                    _sync(dev)
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
                    _sync(dev)
                    t0 = time.perf_counter()
                    with autocast:
                        item = next(gen, None)
                    _sync(dev)
                    model_s += time.perf_counter() - t0
                    if item is None:
                        break
                    c, out = item
                    pred = _to_numpy_pred(out, data_range, quantize, loaded.dtype)
                    t0 = time.perf_counter()
                    gt = _read_gt(loaded, c)
                    p_val, s_val = _score(
                        pred, gt, loaded.clip.gt[c], data_range, crop_border, y_channel
                    )
                    fp.append(p_val)
                    fs.append(s_val)
                    wall_excluded += time.perf_counter() - t0
                    if progress is not None:
                        progress(name, clip.name, len(fp), loaded.n_eval)
                result.clips.append(
                    _clip_result(
                        clip.name,
                        fp,
                        fs,
                        lr_hw,
                        loaded.lr_source,
                        warm_sizes.get(lr_hw) if measure else None,
                    )
                )
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


def _clip_result(
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
    with _PeakMemory(torch.device("cpu")) as mem:
        t_start = time.perf_counter()
        for clip in clips:
            loaded = _load_lr(clip, lr_from_gt=lr_from_gt, max_frames=max_frames)
            data_range = data_range_of(loaded.dtype)
            fp: list[float] = []
            fs: list[float] = []
            for i in range(loaded.n_eval):
                t0 = time.perf_counter()
                pred = imresize(loaded.lr[i], SCALE, border=border)
                t1 = time.perf_counter()
                resize_s += t1 - t0
                gt = _read_gt(loaded, i)
                p_val, s_val = _score(pred, gt, clip.gt[i], data_range, crop_border, y_channel)
                fp.append(p_val)
                fs.append(s_val)
                excluded += time.perf_counter() - t1
                if progress is not None:
                    progress(BICUBIC, clip.name, len(fp), loaded.n_eval)
            lr_hw = (int(loaded.lr[0].shape[0]), int(loaded.lr[0].shape[1]))
            result.clips.append(_clip_result(clip.name, fp, fs, lr_hw, loaded.lr_source, None))
        wall = time.perf_counter() - t_start
        if result.frames:
            result.ms_per_frame = 1000.0 * resize_s / result.frames
            result.fps_end_to_end = result.frames / max(wall - excluded, 1e-9)
            result.peak_mem_mb = mem.peak_mb()
    return result


# ---------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class ModelRequest:
    """A network row to benchmark: a registry name, a weights file, or a ready model (tests)."""

    name: str | None = None
    weights: str | Path | None = None


def _versions() -> dict[str, str]:
    import torch

    return {
        "satvsr": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cuda": str(torch.version.cuda) if torch.cuda.is_available() else "",
        "platform": platform.platform(),
    }


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

    Raises:
        InputError: missing data or malformed clips. ModelError / WeightsError: bad networks.
    """
    from satvsr_cli import weights as wmod

    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {max_frames}")
    if crop_border < 0:
        raise InputError(f"--crop-border must be >= 0, got {crop_border}")
    temporal_padding = choice(TemporalPadding, temporal_padding)
    precision = choice(Precision, precision)
    root = Path(data)
    if not root.exists():
        raise InputError(f"{root}: no such data folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    clips = find_clips(root)
    dev = resolve_device(device)
    if precision == Precision.auto:
        from satvsr_cli.engine.device import resolve_precision

        precision = resolve_precision(precision, dev)

    requests: list[ModelRequest] = [ModelRequest(name=n) for n in models]
    requests += [ModelRequest(weights=p) for p in weights]
    nets: list[tuple[torch.nn.Module, str, str | None, str | None]] = []
    if not requests and include_default and wmod.default_weights() is not None:
        net, label, sha = wmod.resolve_model(None, None, dev)
        nets.append((net, label, sha, str(wmod.default_weights())))
    for req in requests:  # resolve everything before the first long computation
        if req.weights is not None and not Path(req.weights).exists():
            raise WeightsError(f"{req.weights}: weights file not found")
        net, label, sha = wmod.resolve_model(req.name, req.weights, dev, allow_random=allow_random)
        nets.append((net, label, sha, str(req.weights) if req.weights is not None else None))

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
        "versions": _versions(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    import torch

    settings["torch_threads"] = torch.get_num_threads()

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
            )
        except RuntimeError as exc:  # e.g. an op unsupported in this precision on this device
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"{label} failed on {dev} in {precision}: {msg}") from None
        res.weights_sha256 = sha
        methods.append(res)
    dtypes = {str(np.dtype(read_frame(c.gt[0]).dtype)) for c in clips[:1]}
    settings["data_range"] = 65535.0 if "uint16" in dtypes else 255.0
    return BenchmarkReport(settings=settings, methods=methods)


# ---------------------------------------------------------------------------------- speed mode


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

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["lr_size"] = list(self.lr_size)
        d["format"] = FORMAT + "+speed"
        return {k: (_num(v) if isinstance(v, float) else v) for k, v in d.items()}


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
    _sync(device)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
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
        with _autocast(device, precision), torch.inference_mode():
            return [
                out.float().clamp(0, 1).cpu().numpy()
                for _, out in predict_windows(
                    model, x, centres, n_total=n_total, batch_size=batch_size
                )
            ]

    return "satvsr_cli.benchmark.predict_windows (shared features; engine not importable)", (
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
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if frames < 1:
        raise InputError(f"--frames must be >= 1, got {frames}")
    dev = torch.device(device)
    _autocast(dev, precision)  # validates
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
        if _has_engine_api(model):
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
    _sync(dev)

    t_ref = t_eng = math.inf
    for _ in range(max(1, repeats)):  # alternate the two paths; keep the best time of each
        t0 = time.perf_counter()
        ref_out = reference()
        _sync(dev)
        t_ref = min(t_ref, time.perf_counter() - t0)

        t0 = time.perf_counter()
        eng_out = run_engine(frames_np, centres, frames)
        _sync(dev)
        t_eng = min(t_eng, time.perf_counter() - t0)

    diff = max(
        float(np.abs(np.asarray(a, np.float64) - np.clip(b, 0.0, 1.0)).max())
        for a, b in zip(eng_out, ref_out, strict=True)
    )
    peak, n = matmul_peak_gflops(dev)
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
        versions=_versions(),
    )


__all__ = [
    "BICUBIC",
    "FORMAT",
    "PRECISIONS",
    "BenchmarkReport",
    "ClipResult",
    "MethodResult",
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
