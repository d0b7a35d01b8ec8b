"""A picture of a training run: loss and validation PSNR over iterations, from ``log.csv``.

matplotlib is optional (``pip install 'satvsr[plot]'``): without it :func:`plot_log` returns
``None`` and training goes on. The PNG is written under a temporary name and renamed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from satvsr_cli.fsutil import atomic_write_bytes


def have_matplotlib() -> bool:
    """Whether matplotlib imports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _rows(csv_path: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    loss: list[tuple[int, float]] = []
    psnr: list[tuple[int, float]] = []
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            try:
                it = int(r["iter"])
                if r.get("loss"):
                    loss.append((it, float(r["loss"])))
                if r.get("val_psnr"):
                    psnr.append((it, float(r["val_psnr"])))
            except (KeyError, ValueError):
                continue
    return loss, psnr


def plot_log(csv_path: str | Path, png_path: str | Path, *, title: str = "") -> Path | None:
    """Draw training loss (log scale) and mean validation PSNR against iterations.

    Returns:
        The PNG path, or ``None`` when matplotlib is not installed or the CSV has no rows.
    """
    if not have_matplotlib():
        return None
    from matplotlib.figure import Figure  # a bare Figure renders with Agg; no pyplot state

    src = Path(csv_path)
    if not src.is_file():
        return None
    loss, psnr = _rows(src)
    if not loss and not psnr:
        return None
    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    if loss:
        ax.plot(*zip(*loss, strict=True), color="tab:blue", lw=1.2, label="training loss")
        if all(v > 0 for _, v in loss):
            ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss", color="tab:blue")
    ax.grid(True, alpha=0.3)
    if psnr:
        ax2 = ax.twinx()
        ax2.plot(*zip(*psnr, strict=True), color="tab:red", marker="o", ms=3, lw=1.2,
                 label="validation PSNR")
        ax2.set_ylabel("validation PSNR (dB)", color="tab:red")
    if title:
        ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    out = Path(png_path)
    atomic_write_bytes(out, buf.getvalue())
    return out
