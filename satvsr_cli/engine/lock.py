"""One job per output at a time: an advisory lock on ``OUT.satvsr.lock`` beside the output.

The lock is ``flock(LOCK_EX | LOCK_NB)`` on a lock file: a second process on the same output is
refused at once, and the operating system releases the lock when its holder dies (SIGKILL,
power loss of a network client aside), so a stale lock file never blocks a later run. The file
is removed on release; an acquirer checks that the file it locked is still the one at the path
(another process may have removed it in between) and tries again otherwise. Where ``fcntl`` is
missing (Windows), locking is skipped.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from satvsr_cli.errors import OutputError

try:  # pragma: no cover - platform dependent
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def lock_path(output: Path) -> Path:
    """``OUT.satvsr.lock`` beside the output (for a folder ``OUT/``: ``OUT.satvsr.lock``)."""
    return output.with_name(output.name + ".satvsr.lock")


class OutputLock:
    """Exclusive lock of one output path (a context manager; see the module docstring)."""

    def __init__(self, output: Path) -> None:
        """Lock ``output`` (nothing happens until :meth:`acquire` or ``with``)."""
        self.output = Path(output)
        self.path = lock_path(self.output)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`OutputError` at once when another process holds it."""
        if fcntl is None or self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{self.path.parent}: cannot create the output folder ({exc.strerror})"
            ) from None
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot create the lock file ({exc.strerror})"
                                  ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise OutputError(
                    f"{self.output}: another satvsr process is writing this output "
                    f"(lock {self.path.name}); wait for it to finish"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return
            os.close(fd)  # the holder removed the file after we opened it: try again
        raise OutputError(f"{self.path}: could not take the lock")

    def release(self) -> None:
        """Remove the lock file and release the lock (safe to call twice)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
