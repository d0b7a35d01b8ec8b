"""Memory: what is available (RAM, cgroup limit, CUDA), peak usage, and the automatic tile size."""

from __future__ import annotations

import math
import os
import resource
import sys
from pathlib import Path
from typing import Any

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
