"""What this CPU can do, decided at run time: matrix units (AMX, AVX-512-bf16), cores, threads.

Nothing here is hard-coded for one machine: the flags come from ``/proc/cpuinfo`` (Linux), with
torch's ``torch.backends.cpu.get_cpu_capability()`` as a second opinion, and every function has a
safe answer where the information is missing (no bf16, ``os.cpu_count()`` cores).
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path


def prefer_passive_omp() -> None:
    """Make idle OpenMP threads sleep instead of spin (``OMP_WAIT_POLICY=PASSIVE``), unless the
    user chose a policy. Only effective before torch is first imported (the CLI calls it first).

    Measured on a 2-core machine shared with other jobs (load average 6-7), lgtd_small on 64²
    tiles of a 160² frame, 2 threads: 3.6-15.6 s per frame with the default (spinning) policy,
    1.1-1.5 s with PASSIVE; 1 thread: 0.9-1.1 s either way. Spinning threads burn the time slices
    the other processes need and wait for each other at every barrier.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


#: glibc ``mallopt`` parameters (``malloc.h``).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: Freed heap memory kept for reuse before it is given back to the system.
MALLOC_TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Make glibc reuse freed memory instead of mapping and unmapping it for every big tensor:
    no ``mmap`` for large blocks and up to 1 GiB of freed heap kept (``mallopt``), unless the user
    set ``MALLOC_MMAP_MAX_``/``MALLOC_TRIM_THRESHOLD_`` or ``SATVSR_MALLOC=default``.
    Returns whether it changed anything (glibc on Linux only).

    Measured on the 2-core AMD EPYC, lgtd_small at 256² (one thread, 3 forwards): system time
    0.94 → 0.05 s per forward, minor page faults 467k → 12k, peak RSS 1222 → 1263 MB. Every
    intermediate tensor of a whole-frame or large-tile forward was a fresh ``mmap`` whose pages
    the kernel zeroed on first touch, then an ``munmap``.
    """
    if (os.environ.get("SATVSR_MALLOC", "").lower() == "default"
            or "MALLOC_MMAP_MAX_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ
            or not sys.platform.startswith("linux")):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                          MALLOC_TRIM_THRESHOLD))


#: cpuinfo flags of fast bf16 matrix arithmetic, best first.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU in ``/proc/cpuinfo`` (empty where unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def matrix_unit(flags: frozenset[str] | None = None) -> str | None:
    """The fast bf16 unit of this CPU: ``"amx_bf16"``, ``"avx512_bf16"`` or ``None``."""
    flags = cpu_flags() if flags is None else flags
    for f in BF16_FLAGS:
        if f in flags:
            return f
    return None


def torch_cpu_capability() -> str:
    """torch's view of the vector ISA it dispatches to (``AVX512``, ``AVX2``, ...), or ``"-"``."""
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except (ImportError, AttributeError, RuntimeError):
        return "-"


def cpu_has_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when bf16 matrix products run natively (AMX or AVX-512-bf16) on this CPU.

    Without those units oneDNN emulates bf16 with fp32 arithmetic plus conversions, which is
    slower than plain fp32, so ``--precision auto`` keeps fp32 there.
    """
    return matrix_unit(flags) is not None


@functools.cache
def physical_cores() -> int:
    """Physical cores this process may run on: distinct (package, core) pairs among the CPUs in
    its affinity mask; logical CPUs where ``/proc/cpuinfo`` has no topology."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return max(1, len(allowed))
    cores: set[tuple[str, str]] = set()
    proc: int | None = None
    phys = core = None
    for line in [*text.splitlines(), ""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            proc = int(value) if value.isdigit() else None
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
        elif not line.strip():
            if proc is not None and proc in allowed and core is not None:
                cores.add((phys or "0", core))
            proc, phys, core = None, None, None
    return max(1, len(cores) if cores else len(allowed))


def default_threads() -> int:
    """The default ``--threads``: one per physical core this process may use."""
    return physical_cores()


def set_threads(n: int | None) -> int:
    """Set torch's intra-op threads (``None``: :func:`default_threads`); returns the number."""
    import torch

    threads = max(1, int(n)) if n else default_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def user_cache_dir() -> Path:
    """Where compiled models are cached: ``$SATVSR_CACHE_DIR``, else ``$XDG_CACHE_HOME/satvsr``,
    else ``~/.cache/satvsr``."""
    env = os.environ.get("SATVSR_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "satvsr"


@dataclass(frozen=True)
class CpuInfo:
    """A one-line description of the CPU for reports."""

    model: str
    physical_cores: int
    matrix_unit: str | None
    torch_capability: str

    def describe(self) -> str:
        """``AMD EPYC, 2 cores, avx512_bf16, torch AVX512``."""
        unit = self.matrix_unit or "no bf16 matrix unit"
        return (f"{self.model}, {self.physical_cores} cores, {unit}, "
                f"torch {self.torch_capability}")


def cpu_info() -> CpuInfo:
    """The :class:`CpuInfo` of this machine."""
    return CpuInfo(cpu_model(), physical_cores(), matrix_unit(), torch_cpu_capability())


def cpu_tile_cap(backend: str = "torch") -> int:
    """The largest automatic CPU tile side (LR px), for throughput rather than memory.

    :data:`satvsr_cli.engine.memory.MAX_AUTO_TILE_CPU` with torch (256: lgtd_small per-pixel
    time grows past it, and whole frames spend as much system time as user time),
    :data:`~satvsr_cli.engine.memory.MAX_AUTO_TILE_OPENVINO` with OpenVINO (640: bigger tiles are
    faster per pixel). ``scripts/bench_speed.py`` prints throughput against tile size per backend
    and precision to revisit them on other CPUs.
    """
    from satvsr_cli.engine.memory import MAX_AUTO_TILE_CPU, MAX_AUTO_TILE_OPENVINO

    return MAX_AUTO_TILE_OPENVINO if backend == "openvino" else MAX_AUTO_TILE_CPU
