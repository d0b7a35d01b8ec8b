"""Atomic file writes: a temporary file in the same folder, fsync, then ``os.replace``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the whole new one.

    The temporary file gets the usual mode (0666 less the umask, not mkstemp's 0600) and is
    removed if anything fails, Ctrl-C included.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent or ".")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text (newlines written as given)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def kill_point(name: str) -> None:
    """Die here with SIGKILL when ``SATVSR_TEST_KILL_AT`` names this point (the kill/resume
    tests use it to stop a job inside its commit step); does nothing otherwise."""
    if os.environ.get("SATVSR_TEST_KILL_AT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def frame_delay() -> None:
    """Sleep ``SATVSR_TEST_FRAME_DELAY`` seconds (after each computed frame): the kill/resume
    tests use it so that a kill sent after a progress event lands before the job ends."""
    value = os.environ.get("SATVSR_TEST_FRAME_DELAY")
    if value:
        import time

        time.sleep(float(value))


def tree_fingerprint(path: Path) -> dict[str, int]:
    """Number of files and their total size under ``path`` (a file or a folder)."""
    path = Path(path)
    if path.is_file():
        return {"files": 1, "bytes": path.stat().st_size}
    files = total = 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            files += 1
            total += os.stat(os.path.join(root, n)).st_size
    return {"files": files, "bytes": total}


def space_problem(path: Path) -> str | None:
    """``no space left on the device`` or ``the file size limit (N bytes) was reached`` when
    one of them explains why writing ``path`` failed, else ``None``."""
    import shutil

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        size = path.stat().st_size if path.exists() else 0
        if soft != resource.RLIM_INFINITY and size >= soft:
            return f"the file size limit ({soft} bytes) was reached"
    except (ImportError, OSError, ValueError):
        pass
    try:
        if shutil.disk_usage(parent).free < 1 << 20:
            return "no space left on the device"
    except OSError:
        pass
    return None


def write_failure(path: Path, what: str = "cannot write", written: Path | None = None) -> str:
    """A one-line reason for a write that did not read back complete: disk full or the
    process's file-size limit (``RLIMIT_FSIZE``) when either explains it (GDAL and ffmpeg may
    not report such failures themselves). ``written``: the file actually written (a temporary
    name of ``path``), when it differs."""
    reason = space_problem(Path(written) if written is not None else Path(path))
    return f"{path}: {what} ({reason or 'the file did not read back complete'})"
