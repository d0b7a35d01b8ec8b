"""Memory: what is available (RAM, cgroup limit, CUDA), peak usage, the automatic tile size, and
the tile, batch and cache figures of a job (:func:`choose_resources`)."""

from __future__ import annotations

import math
import os
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satvsr_cli.engine.tiling import plan_tiles
from satvsr_cli.options import Precision

if TYPE_CHECKING:
    import torch

    from satvsr_cli.engine.config import UpscaleConfig
    from satvsr_cli.io.base import SourceInfo

#: Empirical peak bytes per LR pixel of one tile for one 5-frame window at batch 1, fp32, no
#: autograd, kept on each network's registry spec (``ModelSpec.bytes_per_lr_pixel``): the growth
#: of peak RSS between two tile sizes (64² and 128² LR for the small presets, 32² and 64² for the
#: paper configurations), divided by the pixel difference, plus 20 % margin. Measured on CPU with
#: ``scripts/bench_engine.py --calibrate`` (raw slopes: msdtgp 95.6 kB, lgtd 90.4 kB, lgtd_hat6
#: 90.7 kB, lgtd_lite 52.3 kB, msdtgp_small 12.4 kB, lgtd_small 13.9 kB). Half precision on CUDA
#: is taken as half. A network without a figure uses its family's, else the largest.
DEFAULT_BYTES_PER_LR_PIXEL = 120_000

#: Largest automatic tile side (LR pixels). On CPU, bigger tiles are slower per pixel (measured
#: with lgtd_small, one thread: 12 us/px at 96², 21 us/px at 256², more at 512²), which more
#: than pays for the extra overlap of small tiles; on GPUs big tiles fill the device better.
MAX_AUTO_TILE_CPU = 256
#: With OpenVINO the per-pixel time falls as the tile grows (2-core AMD EPYC, lgtd_small bf16,
#: 640² LR frame: 13.3 us/px at 64² tiles, 11.9 at 256², 8.4 whole frame), so its cap is larger:
#: frames up to 640² LR run whole (within the memory budget). Tables: ``scripts/bench_speed.py``.
MAX_AUTO_TILE_OPENVINO = 640
MAX_AUTO_TILE = 512
#: Smallest tile the OOM fallback goes down to (LR pixels).
MIN_TILE = 16


def meminfo_available() -> int | None:
    """``MemAvailable`` from /proc/meminfo in bytes (Linux), else ``None``."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cgroup_available() -> int | None:
    """Bytes left under the cgroup (v2 or v1) memory limit, if one is set."""
    candidates = [
        (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
        (
            Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
        ),
    ]
    for limit_p, usage_p in candidates:
        try:
            raw = limit_p.read_text().strip()
            if raw == "max":
                return None
            limit = int(raw)
            if limit >= 1 << 60:
                return None
            usage = int(usage_p.read_text().strip())
            return max(0, limit - usage)
        except (OSError, ValueError):
            continue
    return None


def available_ram() -> int:
    """Bytes of RAM this process can still use: min of MemAvailable and the cgroup headroom.

    Falls back to ``os.sysconf`` pages (total physical memory / 2) where /proc is missing.
    """
    values = [v for v in (meminfo_available(), cgroup_available()) if v is not None]
    if values:
        return min(values)
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        return int(pages * size // 2)
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def peak_rss() -> int:
    """Peak resident set size of this process in bytes (``ru_maxrss``)."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(ru if sys.platform == "darwin" else ru * 1024)


def current_rss() -> int | None:
    """Current resident set size in bytes (Linux), else ``None``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def device_available(device: Any) -> int:
    """Bytes free for tiles on ``device`` (a ``torch.device``): CUDA free memory, else RAM."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return available_ram()


def bytes_per_lr_pixel(model: Any, name: str | None = None, half: bool = False) -> int:
    """The tile-memory estimate for network ``name``/``model``: the model's own
    ``bytes_per_lr_pixel`` attribute, else its registry spec's, else its family's (from the class
    name), else :data:`DEFAULT_BYTES_PER_LR_PIXEL`."""
    value = getattr(model, "bytes_per_lr_pixel", None)
    if not isinstance(value, int):
        value = _spec_value(name) or _spec_value(type(model).__name__.lower())
        if value is None:
            value = DEFAULT_BYTES_PER_LR_PIXEL
    return value // 2 if half else value


def _spec_value(name: str | None) -> int | None:
    """The registry's figure for ``name`` (or its family), ``None`` when unknown."""
    from satvsr_cli.errors import ModelError
    from satvsr_cli.models.registry import get_spec

    if not name:
        return None
    try:
        spec = get_spec(name)
    except ModelError:
        return None
    if spec.bytes_per_lr_pixel is not None:
        return spec.bytes_per_lr_pixel
    if spec.family != name:
        return _spec_value(spec.family)
    return None


def auto_tile(
    budget: int,
    per_pixel: int,
    batch: int,
    size_multiple: int,
    frame_hw: tuple[int, int],
    cap: int = MAX_AUTO_TILE,
) -> int:
    """The largest square tile (LR px, multiple of ``size_multiple``) whose estimate fits ``budget``.

    Capped at ``cap`` and at the padded frame; never below one size multiple.
    """
    side = int(math.sqrt(max(budget, 0) / max(per_pixel * max(batch, 1), 1)))
    side = min(side, cap, max(frame_hw))
    return max(side // size_multiple * size_multiple, size_multiple)


def balanced_tile(side: int, frame_hw: tuple[int, int], size_multiple: int,
                  overlap: int | None = None) -> tuple[int, int]:
    """The smallest tile ``(h, w)`` (multiples of ``size_multiple``, at most ``side``) that covers
    the frame with as few tiles per axis as ``side`` needs, so no tile is mostly overlap or
    padding: a 640-px axis with 256-px tiles and 32 px overlap needs 3 tiles, and 236 px do
    (708 px computed instead of 768). ``overlap`` defaults to the automatic one for ``side``."""
    ov = min(DEFAULT_OVERLAP, side // 4) if overlap is None else overlap
    out = []
    for n_px in frame_hw:
        padded = -(-n_px // size_multiple) * size_multiple
        if side >= padded:
            out.append(padded)
            continue
        m = size_multiple
        step = max((side - ov) // m * m, m)  # tile starts are multiples of the size multiple
        n = 1 + -(-(padded - side) // step)
        t = max(-(-(padded + (n - 1) * ov) // n // m) * m, m)
        while t < side and (n - 1) * max((t - ov) // m * m, m) + t < padded:
            t += m
        out.append(min(t, side))
    return out[0], out[1]


def format_bytes(n: float | None) -> str:
    """Human size: ``1.5 GiB``, ``12 MiB``; ``"-"`` for ``None``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


#: Default tile overlap in LR pixels (at most a quarter of the tile).
DEFAULT_OVERLAP = 32


def default_overlap(name: str | None) -> int:
    """The automatic tile overlap for network ``name``: its registry spec's ``tile_overlap``
    (48 LR px for lgtd_base, whose receptive field is wider), else :data:`DEFAULT_OVERLAP`."""
    from satvsr_cli.errors import ModelError
    from satvsr_cli.models.registry import get_spec

    try:
        return get_spec(name).tile_overlap if name else DEFAULT_OVERLAP
    except ModelError:
        return DEFAULT_OVERLAP


@dataclass(frozen=True)
class Resources:
    """Tile, batch and memory figures chosen for a job (see :func:`choose_resources`)."""

    tile: tuple[int, int] | None
    overlap: int
    batch: int
    cache_budget: int
    budget: int
    bytes_per_pixel: int


def choose_resources(
    config: UpscaleConfig,
    info: SourceInfo,
    *,
    net: Any,
    name: str | None,
    size_multiple: int,
    device: torch.device,
    precision: str,
    backend: str = "torch",
) -> Resources:
    """Tile size, batch and feature-cache budget from the options and the memory available.

    The overlap defaults to the network's (32 LR pixels, 48 for lgtd_base), at most a quarter of
    the tile. The budget is
    ``--max-memory`` or half of what is available (RAM on CPU, free GPU memory on
    CUDA). An automatic tile is the largest square whose estimated peak (bytes per LR pixel of
    the network, measured) fits 60 % of it, at most 256 px on CPU with torch (bigger tiles are
    slower per pixel), 640 px with OpenVINO (bigger tiles are faster) and 512 px on CUDA, then
    shrunk to the smallest tile that needs as few tiles per axis (:func:`balanced_tile`). The automatic batch is 1 on CPU (measured with the
    small presets at 32² to 256² LR tiles, single-threaded: batches of 2 to 8 windows are
    equally fast or up to 40 % slower per window) and up to 8 tiles (or frames) on CUDA, within
    the same budget. The feature cache may use 30 % of the budget on
    CUDA and 12.5 % (at most 512 MiB) on CPU, where ``extract`` is a few per cent of the work.
    """
    comp = config.compute
    per_px = bytes_per_lr_pixel(net, name, half=precision != Precision.fp32)
    budget = comp.max_memory or int(0.5 * device_available(device))
    tile: tuple[int, int] | None
    if comp.tile == 0:
        tile = None
    elif comp.tile is None:
        from satvsr_cli.engine.cpu import cpu_tile_cap

        cap = MAX_AUTO_TILE if device.type == "cuda" else cpu_tile_cap(backend)
        side = auto_tile(int(0.6 * budget), per_px, 1, size_multiple, (info.height, info.width),
                         cap)
        ov = comp.tile_overlap
        tile = balanced_tile(side, (info.height, info.width), size_multiple,
                             min(default_overlap(name), side // 4) if ov is None else ov)
    else:
        tile = (comp.tile, comp.tile) if isinstance(comp.tile, int) else comp.tile
    overlap = comp.tile_overlap
    if overlap is None:
        auto = default_overlap(name)
        overlap = auto if tile is None else min(auto, min(tile) // 4)
    plan0 = plan_tiles(info.height, info.width, tile=tile, overlap=overlap,
                       size_multiple=size_multiple)
    tile_px = plan0.tile_height * plan0.tile_width
    if comp.batch is not None:
        batch = comp.batch
    elif device.type == "cuda":
        fit = int((0.6 * budget) // (per_px * tile_px))
        batch = max(1, min(8, fit))
    else:
        batch = 1  # measured: on CPU a batch is never faster per window than batch 1
    cache_budget = 0
    if comp.feature_cache:
        cache_budget = (
            int(0.3 * budget) if device.type == "cuda" else int(min(0.125 * budget, 512 << 20))
        )
    return Resources(tile, overlap, batch, cache_budget, budget, per_px)
