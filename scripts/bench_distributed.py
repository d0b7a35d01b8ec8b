"""Throughput of one upscale job: 1 process x T threads against P processes x T/P threads.

Runs the same job (a synthetic clip, PNG frames out) twice in one go, as subprocesses of
``python -m satvsr_cli upscale``: once in one process with ``--threads`` CPU threads, once with
``--nproc P`` (torchrun's elastic launcher) and ``--threads // P`` threads per process, and
prints the frames per second of both (wall clock, start-up included, and the network's own),
their ratio, and whether the outputs are byte-identical.

    .venv/bin/python scripts/bench_distributed.py --frames 40 --size 96 --threads 2 --nproc 2

Run it on a quiet machine: other load skews the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np


def make_clip(path: Path, frames: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size + frames, size + frames, 3), dtype=np.uint8)
    gen = imageio_ffmpeg.write_frames(str(path), (size, size), fps=Fraction(25),
                                      macro_block_size=1, quality=None,
                                      output_params=["-crf", "0"], ffmpeg_log_level="error")
    gen.send(None)
    for t in range(frames):  # a drifting scene, like a satellite video
        gen.send(np.ascontiguousarray(base[t:t + size, t:t + size]))
    gen.close()
    return path


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    return wall, summary


def same_tree(a: Path, b: Path) -> bool:
    fa = sorted(p.name for p in a.iterdir())
    return fa == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in fa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, default=96, help="LR frame side in pixels")
    ap.add_argument("--model", default="lgtd_small")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads in all")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--tile", default="0")
    args = ap.parse_args()
    per_rank = max(1, args.threads // args.nproc)
    work = Path(tempfile.mkdtemp(prefix="satvsr-bench-dist-"))
    try:
        clip = make_clip(work / "clip.mp4", args.frames, args.size)
        base = [sys.executable, "-m", "satvsr_cli", "upscale", str(clip), "--model", args.model,
                "--tile", args.tile, "--progress", "json"]
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        one_env = {**env, "OMP_NUM_THREADS": str(args.threads)}
        many_env = {**env, "OMP_NUM_THREADS": str(per_rank), "SATVSR_THREADS": str(per_rank)}
        w1, s1 = run([*base, "-o", str(work / "one")], one_env)
        w2, s2 = run([*base, "-o", str(work / "many"), "--nproc", str(args.nproc)], many_env)
        n = args.frames
        print(f"job: {n} frames {args.size}x{args.size} -> x4, {args.model}, tile {args.tile}, "
              f"{os.cpu_count()} CPUs visible")
        print(f"1 process  x {args.threads} threads: {n / w1:6.2f} frames/s wall "
              f"({w1:.1f} s), network {s1['fps']:.2f} frames/s")
        print(f"{args.nproc} processes x {per_rank} thread(s): {n / w2:6.2f} frames/s wall "
              f"({w2:.1f} s), network {s2['fps']:.2f} frames/s")
        print(f"ratio ({args.nproc} processes / 1 process), wall: {w1 / w2:.2f}")
        same = same_tree(work / "one", work / "many")
        print(f"outputs byte-identical: {same}"
              + ("" if same or per_rank == args.threads else
                 " (other thread counts per process round floats differently; with equal "
                 "threads they are identical)"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
