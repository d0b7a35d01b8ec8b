"""Make ``docs/freeway_compare.png``, the README's comparison picture, from the shipped demo.

The demo's HR frames are rebuilt with ``scripts/make_demo.py --gt`` (its LR frames are the
shipped ``demo/freeway_drift_lr/``, checked byte for byte); ``satvsr benchmark --compare-png``
draws the middle frame as LR | bicubic | lgtd_small | msdtgp_small | GT with each PSNR; the PNG
is then reduced to 256 colours (octree, Floyd-Steinberg) to stay small in the repository.

    python scripts/make_compare_picture.py [--data ../shared/data] [--out docs/freeway_compare.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    """Build the picture."""
    from PIL import Image, PngImagePlugin

    from satvsr_cli.panels import PNG_KEY

    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=repo.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=repo / "docs" / "freeway_compare.png")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        subprocess.run([sys.executable, str(repo / "scripts" / "make_demo.py"), "--data",
                        str(args.data), "--out", str(t / "demo"), "--gt",
                        str(t / "set" / "GT" / "freeway")], check=True)
        lr = t / "set" / "LR4x" / "freeway"
        lr.mkdir(parents=True)
        for p in sorted((repo / "demo" / "freeway_drift_lr").glob("*.png")):
            rebuilt = t / "demo" / "freeway_drift_lr" / p.name
            if rebuilt.read_bytes() != p.read_bytes():
                sys.exit(f"{p}: the rebuilt demo differs from the shipped one")
            (lr / p.name).write_bytes(p.read_bytes())
        full = t / "compare.png"
        subprocess.run([sys.executable, "-m", "satvsr_cli", "benchmark", "--data",
                        str(t / "set"), "--model", "lgtd_small", "--model", "msdtgp_small",
                        "--device", "cpu", "--markdown", "--compare-png", str(full)], check=True)
        with Image.open(full) as im:
            info = PngImagePlugin.PngInfo()
            info.add_text(PNG_KEY, im.info[PNG_KEY])
            small = im.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE,
                                               dither=Image.Dither.FLOYDSTEINBERG)
        small.save(args.out, optimize=True, pnginfo=info)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
