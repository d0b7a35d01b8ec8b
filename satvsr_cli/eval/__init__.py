"""Evaluation: quality, speed and memory of bicubic and of networks on a Jilin-189 style test set
(prints nothing; ``satvsr benchmark`` renders it).

- :mod:`.protocol`: the scoring protocol (the MSDTGP/LGTD papers' one, see ``docs/networks.md``):
  reading clips, predicting every frame, PSNR/SSIM per frame, clip and method;
- :mod:`.run`: :func:`evaluate`, bicubic and every requested network → :class:`BenchmarkReport`;
- :mod:`.report`: the result types and their JSON form;
- :mod:`.speed`: :func:`speed_compare`, the engine against the plain full forward;
- :mod:`.runtime`: device, precision and peak memory (the engine's resolver and RSS readers).

Speed figures: ``ms_per_frame`` is the model-only time per output frame (tensor on the device in,
tensor on the device out, synchronised on CUDA, after untimed warm-up forwards per LR size);
``fps_end_to_end`` counts everything a user's run does (reading frames, making LR, moving data,
inference, converting back) but not the scoring; ``peak_mem_mb`` is
``torch.cuda.max_memory_allocated`` on CUDA (weights included) and, on CPU, the growth of the
process's peak resident set size during the row (``/proc/self/clear_refs`` resets the peak first
where Linux allows it; otherwise it is the growth of ``ru_maxrss``, a lower bound that reads 0 when
an earlier row already reached a higher peak). Weights loaded before the row are not counted on CPU.
"""

from __future__ import annotations

from satvsr_cli.eval.protocol import (
    BICUBIC,
    N_FRAMES,
    SCALE,
    count_gmac,
    data_range_of,
    evaluate_bicubic,
    evaluate_model,
    predict_windows,
    read_frame,
)
from satvsr_cli.eval.report import FORMAT, BenchmarkReport, ClipResult, MethodResult
from satvsr_cli.eval.run import ModelRequest, evaluate, unique_labels, weights_source
from satvsr_cli.eval.runtime import PRECISIONS, device_name, resolve_device
from satvsr_cli.eval.speed import SpeedResult, engine_runner, matmul_peak_gflops, speed_compare

__all__ = [
    "BICUBIC",
    "FORMAT",
    "N_FRAMES",
    "PRECISIONS",
    "SCALE",
    "BenchmarkReport",
    "ClipResult",
    "MethodResult",
    "ModelRequest",
    "SpeedResult",
    "count_gmac",
    "data_range_of",
    "device_name",
    "engine_runner",
    "evaluate",
    "evaluate_bicubic",
    "evaluate_model",
    "matmul_peak_gflops",
    "predict_windows",
    "read_frame",
    "resolve_device",
    "speed_compare",
    "unique_labels",
    "weights_source",
]
