"""CPU speed of satvsr (issue 11): each lever's share, tile throughput, engine vs the fixed reference,
the whole upscale job, all as ratios measured in ONE run. Prints Markdown tables.

    .venv/bin/python scripts/bench_speed.py --short        # a few minutes on 2 cores
    .venv/bin/python scripts/bench_speed.py --full         # the issue's tables (longer)
    options: --threads N, --json OUT, --model NAME (default: the default shipped weights),
             --no-openvino, --cache DIR (OpenVINO IR/blob cache; default a fresh temp folder so
             that the conversion cost is visible; pass ~/.cache/satvsr to reuse it)

Sections: 0. machine (CPU model, matrix unit, threads, load average) and fp32/bf16 matmul peaks;
1. levers: one ``model(x)`` per window on a (1, 5, 3, S, S) clip under fp32 (reference),
channels_last, bf16 autocast, both, OpenVINO f32/bf16 (and torch.compile with --full);
2. tiles: the engine at several tile sizes on one frame size; 3. the engine with its defaults
(``--backend auto --precision auto``, auto tile) against the reference path (one full fp32
forward per window, batch 1, contiguous, whole frame), with the PSNR change the weights' manifest
records for the chosen precision; 4. a whole ``satvsr upscale`` job on PNG frames against a plain
fp32 ``model(x)`` loop; 5. (--full) the paper networks (random init): fraction of the bf16 peak.
Peak memory: ``scripts/bench_engine.py`` (unchanged).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path


def md(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def f(v: float | None, spec: str = ".1f") -> str:
    return "–" if v is None else format(v, spec)


def step(msg: str) -> None:
    print(f"  … {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--short", action="store_true", help="quick check (default)")
    mode.add_argument("--full", action="store_true", help="every table of the issue")
    ap.add_argument("--threads", type=int, default=None, help="default: physical cores")
    ap.add_argument("--model", default=None, help="network with shipped weights (default one)")
    ap.add_argument("--no-openvino", action="store_true")
    ap.add_argument("--cache", type=Path, default=None, help="OpenVINO cache folder")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    full = bool(args.full)

    tmp = Path(tempfile.mkdtemp(prefix="satvsr-bench-speed-"))
    os.environ["SATVSR_CACHE_DIR"] = str(args.cache or tmp / "cache")
    if args.no_openvino:
        os.environ["SATVSR_BACKEND"] = "torch"
    from satvsr_cli.engine.cpu import keep_freed_memory, prefer_passive_omp

    prefer_passive_omp()  # as the CLI does, before torch loads
    keep_freed_memory()
    import torch

    from satvsr_cli.engine.backend import openvino_available
    from satvsr_cli.engine.cpu import cpu_info, set_threads
    from satvsr_cli.eval import levers as speed
    from satvsr_cli.weights import resolve_model

    threads = set_threads(args.threads)
    use_ov = openvino_available() and not args.no_openvino
    info = cpu_info()
    t_start = time.perf_counter()
    report: dict = {"mode": "full" if full else "short", "cpu": info.describe(),
                    "threads": threads, "torch": torch.__version__,
                    "load_average_start": os.getloadavg()}
    print(f"# satvsr speed ({report['mode']})\n")
    print(f"CPU: {info.describe()}; {threads} threads; torch {torch.__version__}; "
          f"OpenVINO {'yes' if use_ov else 'no'}; load average at start "
          f"{os.getloadavg()[0]:.2f}\n")

    step("matmul peaks")
    peaks = speed.matmul_peaks(2048, repeats=3 if full else 2)
    report["peaks_gflops"] = peaks
    print(f"matmul 2048² peak: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} "
          f"GFLOP/s (bf16/fp32 {peaks['bf16'] / peaks['fp32']:.2f}×)\n")

    net, label, _sha = resolve_model(args.model, None, "cpu")
    weights = None
    manifest = getattr(net, "weights_manifest", None)
    if manifest is not None:
        weights = str(manifest.path)
    report["network"] = label

    # 1. levers
    sizes = [64, 160, 320, 640] if full else [64, 160]
    rows = speed.lever_rows(net, sizes, repeats=3 if full else 2, openvino=use_ov,
                            compile_=full, on_step=step)
    report["levers"] = [asdict(r) for r in rows]
    print(f"## 1. Levers: {label}, one model(x) per (1,5,3,S,S) window, best of "
          f"{3 if full else 2}; ratio = reference time / lever time\n")
    print(md(["LR", "lever", "ms", "GFLOP/s", "% fp32 peak", "% bf16 peak", "× reference",
              "note"],
             [[f"{r.size}²", r.lever, f(r.ms), f(r.gflops),
               f(100 * r.gflops / peaks["fp32"] if r.gflops else None, ".0f"),
               f(100 * r.gflops / peaks["bf16"] if r.gflops else None, ".0f"),
               f(r.ratio, ".2f"), r.note] for r in rows]))
    print()

    # 2. tiles
    frame = (640, 640) if full else (320, 320)
    tiles: list[int | None] = ([64, 96, 128, 192, 256, 320, None] if full
                               else [64, 128, 192, None])
    for backend, prec in ([("torch", "fp32"), ("torch", "bf16")]
                          + ([("openvino", "bf16")] if use_ov else [])):
        trows = speed.tile_rows(net, frame, tiles, backend=backend, precision=prec,
                                frames=3 if full else 2, on_step=step)
        report.setdefault("tiles", {})[f"{backend} {prec}"] = [asdict(r) for r in trows]
        print(f"## 2. Tiles: engine on {frame[0]}x{frame[1]} LR frames, {backend} {prec}, "
              "overlap min(32, tile/4); ratio = whole-frame time / tile time\n")
        print(md(["tile", "tiles/frame", "ms/frame", "µs/LR px", "user s", "sys s",
                  "× whole frame"],
                 [[r.tile, str(r.tiles_per_frame), f(r.ms_per_frame, ".0f"),
                   f(r.us_per_lr_px, ".2f"), f(r.user_s, ".1f"), f(r.sys_s, ".1f"),
                   f(r.ratio, ".2f")] for r in trows]))
        print()

    # 3. engine defaults vs reference
    heads = []
    for lr in ([160, 640] if full else [160]):
        step(f"engine vs reference at {lr}²")
        for backend in (["auto", "torch"] if use_ov else ["torch"]):
            h = speed.engine_vs_reference(net, lr, frames=6 if full else 4,
                                          repeats=2 if full else 1, backend=backend,
                                          threads=threads)
            heads.append((backend, h))
    report["engine_vs_reference"] = [dict(asdict(h), requested=b) for b, h in heads]
    print("## 3. Engine defaults vs the fixed reference (one full fp32 forward per window, "
          "batch 1, contiguous, whole frame)\n")
    print(md(["LR", "--backend", "runs as", "precision (why)", "tile", "engine fps",
              "reference fps", "speed-up", "engine GFLOP/s (% fp32 / % bf16 peak)",
              "max |diff|", "PSNR change (manifest)"],
             [[f"{h.lr}²", b, h.backend, f"{h.precision} ({h.precision_reason})", h.tile,
               f(h.engine_fps, ".3f"), f(h.reference_fps, ".3f"), f(h.speedup, ".2f") + "×",
               (f"{h.engine_gflops:.1f} ({100 * h.engine_gflops / peaks['fp32']:.0f}% / "
                f"{100 * h.engine_gflops / peaks['bf16']:.0f}%)") if h.engine_gflops else "–",
               f(h.max_abs_diff, ".1e"),
               ", ".join(f"{k} {v:+.3f} dB" for k, v in h.psnr_change.items()) or "– (fp32)"]
              for b, h in heads]))
    print()

    # 4. whole job
    n = 96 if full else 24
    step(f"end to end, {n} PNG frames")
    e2e = speed.end_to_end(weights, frames=n, lr=160, workdir=tmp, threads=threads)
    report["end_to_end"] = e2e
    print(f"## 4. Whole `satvsr upscale` job, {n} PNG frames at LR 160² (start-up, reading and "
          "writing included), against a plain fp32 model(x) loop over the decoded frames\n")
    print(md(["job fps", "loop fps", "× loop", "backend", "precision", "tile"],
             [[f(e2e["job_fps"], ".3f"), f(e2e["loop_fps"], ".3f"), f(e2e["ratio"], ".2f"),
               e2e["backend"], e2e["precision"], "x".join(map(str, e2e["tile"]))]]))
    print("\n(OpenVINO's IR for this tile shape was cached by section 3, as after a first run; "
          "section 1's notes show the one-off conversion cost. Peak memory: "
          "scripts/bench_engine.py.)")
    print()

    # 5. paper networks
    if full:
        from satvsr_cli.models import build_model

        prow = []
        for name in ("msdtgp", "lgtd"):
            pnet = build_model(name).eval()
            rows5 = speed.lever_rows(pnet, [64], repeats=1, openvino=use_ov, on_step=step)
            prow += [[name, r.lever, f(r.ms), f(r.gflops),
                      f(100 * r.gflops / peaks["bf16"] if r.gflops else None, ".0f"),
                      f(r.ratio, ".2f"), r.note] for r in rows5]
            report.setdefault("paper", {})[name] = [asdict(r) for r in rows5]
        print("## 5. Paper networks (random init), LR 64², one window\n")
        print(md(["network", "lever", "ms", "GFLOP/s", "% bf16 peak", "× reference", "note"],
                 prow))
        print()

    report["load_average_end"] = os.getloadavg()
    report["wall_s"] = time.perf_counter() - t_start
    print(f"wall {report['wall_s']:.0f} s; load average at end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
