"""Memory: what is available (RAM, cgroup limit, CUDA), peak usage, and the automatic tile size."""

from __future__ import annotations

import math
import os
import resource
import sys
from pathlib import Path
from typing import Any

#: Empirical peak bytes per LR pixel of one tile for one 5-frame window at batch 1, fp32, no
#: autograd: the growth of peak RSS between two tile sizes (64² and 128² LR for the small
#: presets, 32² and 64² for the paper configurations), divided by the pixel difference, plus
#: 20 % margin. Measured on CPU with ``scripts/bench_engine.py --calibrate`` (raw slopes:
#: msdtgp 95.6 kB, lgtd 90.4 kB, lgtd_hat6 90.7 kB, lgtd_lite 52.3 kB, msdtgp_small 12.4 kB,
#: lgtd_small 13.9 kB). Half precision on CUDA is taken as half. Unknown networks use the largest.
BYTES_PER_LR_PIXEL: dict[str, int] = {
    "msdtgp": 115_000,
    "lgtd": 110_000,
    "lgtd_hat6": 110_000,
    "lgtd_lite": 63_000,
    "msdtgp_small": 15_000,
    "lgtd_small": 17_000,
}
DEFAULT_BYTES_PER_LR_PIXEL = 120_000

#: Largest automatic tile side (LR pixels). On CPU, bigger tiles are slower per pixel (measured
#: with lgtd_small, one thread: 12 us/px at 96², 21 us/px at 256², more at 512²), which more
#: than pays for the extra overlap of small tiles; on GPUs big tiles fill the device better.
MAX_AUTO_TILE_CPU = 256
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
    """The tile-memory estimate (see :data:`BYTES_PER_LR_PIXEL`) for network ``name``/``model``.

    Looked up by registry name, then by family (``msdtgp``/``lgtd`` from the class name), then
    the largest known value.
    """
    value = getattr(model, "bytes_per_lr_pixel", None)
    if not isinstance(value, int):
        value = BYTES_PER_LR_PIXEL.get(name or "")
        if value is None:
            family = type(model).__name__.lower()
            value = BYTES_PER_LR_PIXEL.get(family, DEFAULT_BYTES_PER_LR_PIXEL)
    return value // 2 if half else value


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
