"""Benchmark a weights entry on every dev set, clean and coded, and record it in its manifest.

    .venv/bin/python scripts/bench_shipped.py satvsr_cli/weights_data/lgtd_base.v1.json

Runs ``satvsr benchmark --data ROOT/eval --weights W --ablate-window [--lr-codec h264:23]`` for
ROOT in taipei and jilin1 (../shared/data/satvideo, or $SATVSR_DATA/satvideo), keeps the JSON
reports in --reports (default runs/bench/ID), and writes the ``metrics.benchmark`` block of the
manifest (PSNR/SSIM, bicubic of the same LR, window gain) that docs/weights.md reports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = ("taipei", "jilin1")
CONDITIONS = (("clean", None), ("h264_23", "h264:23"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("manifest", type=Path, help="the weights entry's .json manifest")
    ap.add_argument("--reports", type=Path, help="folder for the benchmark JSON reports")
    ap.add_argument("--dry-run", action="store_true", help="print the block, do not write it")
    args = ap.parse_args()
    manifest = json.loads(args.manifest.read_text())
    weights = args.manifest.with_suffix(".safetensors")
    wid = args.manifest.stem
    reports = args.reports or ROOT / "runs" / "bench" / wid
    reports.mkdir(parents=True, exist_ok=True)
    data = Path(os.environ.get("SATVSR_DATA", ROOT.parent / "shared" / "data")) / "satvideo"
    satvsr = Path(sys.executable).parent / "satvsr"
    bench: dict[str, object] = {
        "protocol": "satvsr benchmark defaults: RGB, full frame, unclamped, centre padding, "
                    "LR4x files, mean over clips; coded: --lr-codec h264:23 (libx264 -crf 23 "
                    "-preset medium -pix_fmt yuv420p, each LR clip coded as one video)",
        "command": "satvsr benchmark --data ../shared/data/satvideo/ROOT/eval --weights ID "
                   "--ablate-window [--lr-codec h264:23]"}
    for ds in SETS:
        row: dict[str, object] = {}
        for cond, codec in CONDITIONS:
            out = reports / f"{ds}_{cond}.json"
            cmd = [str(satvsr), "benchmark", "--data", str(data / ds / "eval"), "--weights",
                   str(weights), "--ablate-window", "--json", str(out)]
            if codec:
                cmd += ["--lr-codec", codec]
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            summary = json.loads(out.read_text())["summary"]
            bic = next(s for s in summary if s["kind"] == "baseline")
            net = next(s for s in summary if s["kind"] == "network")
            key = "" if codec is None else f"{cond}_"
            row.update({f"{key}psnr": round(net["psnr"], 3), f"{key}ssim": round(net["ssim"], 4),
                        f"{key}bicubic_psnr": round(bic["psnr"], 3),
                        f"{key}bicubic_ssim": round(bic["ssim"], 4),
                        f"{key}window_gain_db": round(net["window_gain_db"], 3),
                        "frames": net["frames"]})
        bench[f"{ds}/eval"] = row
    print(json.dumps(bench, indent=1))
    if not args.dry_run:
        manifest.setdefault("metrics", {})["benchmark"] = bench
        args.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote metrics.benchmark of {args.manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
