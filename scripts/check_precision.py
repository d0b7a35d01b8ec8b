"""Measure the fp32-vs-bf16 PSNR change of weights on the dev sets and record it in the manifest.

``--precision auto`` (see :mod:`satvsr_cli.engine.precision`) picks bf16 only when the weights'
manifest carries this measurement and every |delta| is within 0.05 dB for the backend in use.

Usage::

    .venv/bin/python scripts/check_precision.py satvsr_cli/weights_data/lgtd_small.v1.safetensors \
        satvsr_cli/weights_data/msdtgp_small.v1.safetensors   # measures, writes the manifests
    .venv/bin/python scripts/check_precision.py --dry-run WEIGHTS   # prints only

Default dev sets: ``../shared/data/satvideo/{taipei,jilin1}/eval`` beside the repository (official
LR4x frames). Backends: torch, plus OpenVINO when installed. Only the JSON manifest changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = [REPO.parent / "shared/data/satvideo/taipei/eval",
                REPO.parent / "shared/data/satvideo/jilin1/eval"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", type=Path, help=".safetensors files (manifest beside)")
    ap.add_argument("--data", action="append", type=Path, help="dev set folder (repeatable)")
    ap.add_argument("--backend", action="append", choices=["torch", "openvino"],
                    help="backends to measure (default: torch, and openvino when installed)")
    ap.add_argument("--max-frames", type=int, default=None, help="frames per clip (default all)")
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the manifests")
    args = ap.parse_args(argv)

    from satvsr_cli.engine.cpu import set_threads
    from satvsr_cli.errors import SatvsrError
    from satvsr_cli.eval.precision import measure_precision, record_precision

    set_threads(None)
    roots = args.data or DEFAULT_DATA
    for root in roots:
        if not root.is_dir():
            print(f"error: {root}: no such dev set folder", file=sys.stderr)
            return 2
    try:
        for w in args.weights:
            block = measure_precision(w, roots, backends=args.backend, max_frames=args.max_frames,
                                      on_step=lambda s: print(f"  {s}", file=sys.stderr))
            print(json.dumps({str(w): block}, indent=2))
            if not args.dry_run:
                print(f"wrote {record_precision(w, block)}", file=sys.stderr)
    except SatvsrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
