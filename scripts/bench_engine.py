"""Benchmark the streaming engine: memory against video length, memory on huge GeoTIFF frames, and
speed against a naive per-window forward. Prints the figures and the ratios.

Every measurement runs in a fresh subprocess (so that each peak RSS is its own) with randomly
initialised weights of a small preset (memory and speed do not depend on the weight values):

1. ``length``: peak RSS of ``satvsr upscale`` on a synthetic 50-frame and a 1000-frame video
   (``--video-size`` LR pixels, default 32x32); target: within 10 %.
2. ``geotiff``: peak RSS on a synthetic stack of three 4096 x 4096 uint16 3-band GeoTIFFs
   (``--geo-size``); target < 4 GiB. By default one output frame is computed (``--end 1``; its
   window reads all three frames, so the ring buffer holds the whole stack, exactly as in a full
   run); ``--geo-all-frames`` computes all three (about 3x longer).
3. ``speed``: frames per second of the engine (end to end: decode, network, encode) against one
   full ``model(clip)`` per window at batch 1 on the same weights, in the same process, on a
   synthetic ``--speed-size`` video; the ratio is engine / naive.
4. ``--calibrate``: peak-RSS growth per LR pixel of every registered network (the figures kept
   as ``bytes_per_lr_pixel`` on each spec in :mod:`satvsr_cli.models.registry`).

Usage: ``python scripts/bench_engine.py [--only length,geotiff,speed] [--model lgtd_small]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


def gib(n: float) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def mib(n: float) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def child(args: list[str], timeout: float | None = None) -> dict:
    """Run this script's ``_child`` mode in a new process; return its JSON result."""
    res = subprocess.run([sys.executable, str(HERE), "_child", *args], capture_output=True,
                         text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------


def make_video(path: Path, n: int, size: int, fps: Fraction = Fraction(25)) -> None:
    """A drifting smooth texture, ``n`` frames of ``size x size``."""
    import imageio_ffmpeg

    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (size // 4 + 8, size // 4 + 8 + n // 8 + 2, 3)).astype(np.uint8)
    big = np.kron(big, np.ones((4, 4, 1), np.uint8))
    gen = imageio_ffmpeg.write_frames(str(path), (size, size), fps=fps, macro_block_size=1,
                                      ffmpeg_log_level="error",
                                      output_params=["-preset", "ultrafast", "-crf", "18"])
    gen.send(None)
    for t in range(n):
        x = t // 2
        gen.send(np.ascontiguousarray(big[:size, x : x + size]))
    gen.close()


def make_geotiffs(folder: Path, n: int, size: int) -> None:
    """``n`` uint16 3-band GeoTIFFs of ``size x size`` on one grid (tiled, DEFLATE)."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        coarse = rng.integers(0, 4096, (3, size // 16, size // 16)).astype(np.uint16)
        data = np.kron(coarse, np.ones((1, 16, 16), np.uint16))
        data += rng.integers(0, 64, data.shape, dtype=np.uint16)
        with rasterio.open(folder / f"f{i}.tif", "w", driver="GTiff", width=size, height=size,
                           count=3, dtype="uint16", crs=CRS.from_epsg(32633),
                           transform=Affine(0.5, 0, 400000, 0, -0.5, 5000000), tiled=True,
                           blockxsize=512, blockysize=512, compress="deflate") as ds:
            ds.write(data)
            ds.update_tags(SATVSR_VALUE_RANGE="0,4159")


# ----------------------------------------------------------------------------------------------
# child processes
# ----------------------------------------------------------------------------------------------


def child_upscale(argv: list[str]) -> None:
    """``_child upscale MODEL INPUT OUTPUT [options…]``: one upscale job, print JSON."""
    import torch

    from satvsr_cli.engine.config import UpscaleConfig
    from satvsr_cli.engine.run import upscale
    from satvsr_cli.models import build_model

    model_name, inp, out, *rest = argv
    opts = json.loads(rest[0]) if rest else {}
    torch.manual_seed(0)
    net = build_model(model_name).eval()
    t0 = time.perf_counter()
    cfg = UpscaleConfig.from_flags(input=inp, output=out, overwrite=True, preset="ultrafast", **opts)
    s = upscale(cfg, model=net, model_name=model_name)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"peak_rss": ru, "children_peak_rss": kids, "wall_s": wall,
                      "frames": s.frames_written, "engine_fps": s.frames_written / wall,
                      "loop_fps": s.fps,
                      "tile": s.tile, "tiles_per_frame": s.tiles_per_frame, "batch": s.batch,
                      "threads": torch.get_num_threads()}))


def child_naive(argv: list[str]) -> None:
    """``_child naive MODEL VIDEO``: decode all frames, then one ``model(clip)`` per window."""
    import torch

    from satvsr_cli.engine.windows import frame_indices
    from satvsr_cli.io.video import VideoSource
    from satvsr_cli.models import build_model

    model_name, video = argv
    torch.manual_seed(0)
    net = build_model(model_name).eval()
    frames = [torch.from_numpy(f.data.astype(np.float32) / 255).permute(2, 0, 1)
              for f in VideoSource(Path(video)).frames()]
    n = len(frames)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for t in range(n):
            clip = torch.stack([frames[j] for j in frame_indices(t, n)])[None]
            net(clip).clamp_(0, 1)
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, "frames": n, "fps": n / wall}))


def child_calibrate(argv: list[str]) -> None:
    """``_child calibrate MODEL SIZE``: peak RSS growth of one window at ``SIZE x SIZE``."""
    import gc

    import torch

    from satvsr_cli.models import build_model

    name, size = argv[0], int(argv[1])
    torch.manual_seed(0)
    net = build_model(name).eval()
    x = torch.rand(1, 5, 3, size, size)
    with torch.inference_mode():
        y = torch.rand(1, 5, 3, 16, 16)
        net.forward_window(y, net.extract(y.flatten(0, 1)).unflatten(0, (1, 5)))
        gc.collect()
        with open("/proc/self/status") as f:
            base = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmRSS"))
        feats = net.extract(x.flatten(0, 1)).unflatten(0, (1, 5))
        net.forward_window(x, feats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"growth": peak - base}))


# ----------------------------------------------------------------------------------------------
# the benchmarks
# ----------------------------------------------------------------------------------------------


def bench_length(tmp: Path, model: str, size: int, counts: tuple[int, int]) -> dict:
    results = {}
    for n in counts:
        video = tmp / f"len{n}.mp4"
        make_video(video, n, size)
        r = child(["upscale", model, str(video), str(tmp / f"len{n}_x4.mp4")])
        results[n] = r
        print(f"  {n:5d} frames {size}x{size}: peak RSS {mib(r['peak_rss'])}, "
              f"{r['frames']} frames in {r['wall_s']:.1f} s ({r['engine_fps']:.2f} fps, batch "
              f"{r['batch']})", flush=True)
    a, b = (results[n]["peak_rss"] for n in counts)
    ratio = b / a
    print(f"  => peak RSS {counts[1]} / {counts[0]} frames = {ratio:.3f} "
          f"({'within' if abs(ratio - 1) <= 0.10 else 'NOT within'} 10 %)", flush=True)
    return {"runs": results, "ratio": ratio}


def bench_geotiff(tmp: Path, model: str, size: int, all_frames: bool, max_memory: str | None
                  ) -> dict:
    folder = tmp / "geo"
    t0 = time.perf_counter()
    make_geotiffs(folder, 3, size)
    print(f"  wrote 3 x {size}x{size} uint16 GeoTIFFs in {time.perf_counter() - t0:.0f} s",
          flush=True)
    opts: dict = {} if all_frames else {"end": 1}
    if max_memory:
        from satvsr_cli.cli.upscale import parse_size

        opts["max_memory"] = parse_size(max_memory)
    r = child(["upscale", model, str(folder), str(tmp / "geo_x4"), json.dumps(opts)])
    print(f"  {'3 frames' if all_frames else '1 frame (window reads all 3)'}: peak RSS "
          f"{gib(r['peak_rss'])} (target < 4 GiB: {'met' if r['peak_rss'] < 4 << 30 else 'MISSED'}),"
          f" tile {r['tile']} x{r['tiles_per_frame']}, batch {r['batch']}, "
          f"{r['wall_s']:.0f} s", flush=True)
    return r


def bench_speed(tmp: Path, model: str, size: int, n: int) -> dict:
    video = tmp / "speed.mp4"
    make_video(video, n, size)
    eng = child(["upscale", model, str(video), str(tmp / "speed_x4.mp4")])
    naive = child(["naive", model, str(video)])
    ratio = eng["engine_fps"] / naive["fps"]
    loop_ratio = eng["loop_fps"] / naive["fps"]
    print(f"  engine, whole job (probe, decode, network, encode, join): {eng['engine_fps']:.3f} "
          f"fps; its frame loop: {eng['loop_fps']:.3f} fps (tile {eng['tile']}, batch "
          f"{eng['batch']})", flush=True)
    print(f"  naive model(clip) per window, batch 1, frames already decoded: "
          f"{naive['fps']:.3f} fps", flush=True)
    print(f"  => ratio engine / naive: {ratio:.2f} (whole job), {loop_ratio:.2f} (frame loop)",
          flush=True)
    return {"engine": eng, "naive": naive, "ratio": ratio, "loop_ratio": loop_ratio}


def calibrate() -> dict:
    from satvsr_cli.models import list_models

    out = {}
    for name in list_models():
        sizes = (64, 128) if name.endswith("_small") else (32, 64)
        g = [child(["calibrate", name, str(s)])["growth"] for s in sizes]
        slope = (g[1] - g[0]) / (sizes[1] ** 2 - sizes[0] ** 2)
        out[name] = slope
        print(f"  {name:14s} {slope / 1000:8.1f} kB per LR pixel "
              f"(growth {mib(g[0])} at {sizes[0]}², {mib(g[1])} at {sizes[1]}²)", flush=True)
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        {"upscale": child_upscale, "naive": child_naive, "calibrate": child_calibrate}[
            sys.argv[2]](sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="length,geotiff,speed",
                    help="comma list of: length, geotiff, speed")
    ap.add_argument("--model", default="lgtd_small", help="registered network (random init)")
    ap.add_argument("--video-size", type=int, default=32, help="LR size of the length test")
    ap.add_argument("--frames", default="50,1000", help="the two video lengths")
    ap.add_argument("--geo-size", type=int, default=4096)
    ap.add_argument("--geo-all-frames", action="store_true")
    ap.add_argument("--max-memory", default=None, help="e.g. 2G, passed to the GeoTIFF run")
    ap.add_argument("--speed-size", type=int, default=96)
    ap.add_argument("--speed-frames", type=int, default=16)
    ap.add_argument("--calibrate", action="store_true", help="measure bytes per LR pixel")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads in the measured processes (default: torch's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        os.environ["MKL_NUM_THREADS"] = str(args.threads)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"satvsr engine benchmark: model {args.model} (random init), CPU threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    results: dict = {"model": args.model}
    with tempfile.TemporaryDirectory(prefix="satvsr_bench_") as d:
        tmp = Path(d)
        if args.calibrate:
            print("calibration (bytes per LR pixel, batch 1, fp32):")
            results["calibrate"] = calibrate()
        only = {s.strip() for s in args.only.split(",") if s.strip()}
        if "length" in only:
            counts = tuple(int(v) for v in args.frames.split(","))
            print(f"1. peak RSS against video length ({counts[0]} vs {counts[1]} frames):")
            results["length"] = bench_length(tmp, args.model, args.video_size, counts)  # type: ignore[arg-type]
        if "geotiff" in only:
            print(f"2. peak RSS on a 3-frame {args.geo_size}x{args.geo_size} GeoTIFF stack:")
            results["geotiff"] = bench_geotiff(tmp, args.model, args.geo_size,
                                               args.geo_all_frames, args.max_memory)
        if "speed" in only:
            print(f"3. engine speed against a naive forward per window "
                  f"({args.speed_frames} frames {args.speed_size}x{args.speed_size}):")
            results["speed"] = bench_speed(tmp, args.model, args.speed_size, args.speed_frames)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
