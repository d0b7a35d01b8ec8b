"""Inference backends behind one small :class:`Runner` interface: torch, or OpenVINO on CPU.

The engine (:class:`~satvsr_cli.engine.infer.WindowUpscaler`) calls ``runner.extract``,
``runner.forward_window`` and ``runner.forward`` instead of the network itself.

* :class:`TorchRunner` runs the module: channels_last weights and inputs on CPU (oneDNN's
  blocked NHWC convolutions, no layout reorders between layers), bf16/fp16 autocast.
* :class:`OpenVINORunner` converts each entry point of the network with
  ``openvino.convert_model`` (TorchScript tracing, one static shape per tile shape: the traced
  graph of the pure-PyTorch deformable convolution bakes its sampling grid in, so a dynamic-shape
  graph would be wrong), keeps the IR (``.xml``/``.bin``) in ``<cache>/openvino/ir`` keyed by the
  weights, shape and versions, and compiles it once per shape with OpenVINO's own blob cache
  (``CACHE_DIR``). bf16 uses ``INFERENCE_PRECISION_HINT=bf16``; fp32 sets ``f32`` explicitly
  (OpenVINO defaults to bf16 on CPUs with bf16 units). The deformable convolution's
  ``grid_sample`` becomes OpenVINO ``GridSample``.

``--backend auto`` uses OpenVINO on CPU when it is installed (``pip install 'satvsr[openvino]'``)
and the network converts for the first tile shape; otherwise torch, with a one-line warning when
the conversion failed. ``$SATVSR_BACKEND`` (``torch``/``openvino``) replaces what ``auto`` means.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from satvsr_cli.device import autocast_dtype
from satvsr_cli.engine.cpu import user_cache_dir
from satvsr_cli.errors import SatvsrError

BACKENDS: tuple[str, ...] = ("auto", "torch", "openvino")
#: bump when the conversion changes, so that cached IR of an older conversion is not reused
IR_FORMAT = 1

Shape = tuple[int, ...]


class BackendError(SatvsrError):
    """The requested backend cannot run here (not installed, wrong device, no conversion)."""

    exit_code = 2


class Runner(Protocol):
    """What the engine calls instead of the network."""

    name: str
    precision: str

    def extract(self, frames: torch.Tensor, fp32: bool = False) -> torch.Tensor:
        """``model.extract``: ``(N, 3, h, w)`` → ``(N, F, h, w)``."""

    def forward_window(
        self, clip: torch.Tensor, feats: torch.Tensor, fp32: bool = False
    ) -> torch.Tensor:
        """``model.forward_window``: clip and per-frame features → ``(B, 3, sh, sw)``."""

    def forward(self, clip: torch.Tensor, fp32: bool = False) -> torch.Tensor:
        """``model(clip)`` for networks without the extract/forward_window API."""

    def prepare(self, shapes: dict[str, tuple[Shape, ...]]) -> None:
        """Get ready for these input shapes (convert/compile now rather than on first use)."""

    def describe(self) -> str:
        """One line for reports."""


def openvino_available() -> bool:
    """True when ``import openvino`` works."""
    try:
        with keep_sigaltstack():
            import openvino  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install counts as missing
        return False
    return True


def resolve_backend(name: str, device: torch.device) -> str:
    """``auto`` → ``openvino`` on CPU when installed (or ``$SATVSR_BACKEND``), else ``torch``.

    Explicit ``openvino`` is checked here (installed, CPU); the conversion itself is checked by
    :func:`open_runner`.
    """
    n = (name or "auto").strip().lower()
    if n not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    if n == "auto":
        env = os.environ.get("SATVSR_BACKEND", "").strip().lower()
        if env in ("torch", "openvino"):
            return env if env == "torch" or (device.type == "cpu" and openvino_available()) else "torch"
        return "openvino" if device.type == "cpu" and openvino_available() else "torch"
    if n == "openvino":
        if device.type != "cpu":
            raise BackendError(f"--backend openvino runs on the CPU, not on {device.type}; "
                               "use --device cpu or --backend torch")
        if not openvino_available():
            raise BackendError("--backend openvino: OpenVINO is not installed "
                               "(pip install 'satvsr[openvino]')")
    return n


def _model_shapes(model: Any) -> tuple[bool, int]:
    shared = callable(getattr(model, "extract", None)) and callable(
        getattr(model, "forward_window", None)
    )
    return shared, int(getattr(model, "feat_channels", 0) or 0)


def engine_shapes(
    model: Any, tile_hw: tuple[int, int], tiles_per_call: int, windows_per_call: int
) -> dict[str, tuple[Shape, ...]]:
    """The input shapes the engine will use for one tile shape (see ``WindowUpscaler``)."""
    th, tw = tile_hw
    shared, feat = _model_shapes(model)
    n = tiles_per_call * windows_per_call
    frames = int(getattr(model, "frames", 5) or 5)
    if not shared:
        return {"forward": ((n, frames, 3, th, tw),)}
    return {
        "extract": ((tiles_per_call, 3, th, tw),),
        "forward_window": ((n, frames, 3, th, tw), (n, frames, feat, th, tw)),
    }


# ------------------------------------------------------------------------------------ torch


class TorchRunner:
    """The network itself, channels_last on CPU, with autocast for bf16/fp16."""

    name = "torch"

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        precision: str,
        channels_last: bool | None = None,
    ) -> None:
        """``channels_last``: ``None`` → on for CPU (converts the module's 4-D weights in place)."""
        self.model = model
        self.device = device
        self.precision = precision
        self.channels_last = device.type == "cpu" if channels_last is None else channels_last
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # convolutions whose bf16 kernel on this CPU is wrong run in fp32 (engine/kernelcheck.py)
        self.fp32_layers: list[str] = []
        if device.type == "cpu" and precision == "bf16":
            from satvsr_cli.engine.kernelcheck import guard_bf16

            self.fp32_layers = guard_bf16(model)

    def _ctx(self, fp32: bool) -> contextlib.AbstractContextManager[Any]:
        dt = None if fp32 else autocast_dtype(self.precision)
        if dt is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dt)

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def extract(self, frames: torch.Tensor, fp32: bool = False) -> torch.Tensor:
        """See :class:`Runner`."""
        with self._ctx(fp32):
            out: torch.Tensor = self.model.extract(self._in(frames))  # type: ignore[operator]
        return out

    def forward_window(
        self, clip: torch.Tensor, feats: torch.Tensor, fp32: bool = False
    ) -> torch.Tensor:
        """See :class:`Runner`."""
        with self._ctx(fp32):
            out: torch.Tensor = self.model.forward_window(clip, feats)  # type: ignore[operator]
        return out

    def forward(self, clip: torch.Tensor, fp32: bool = False) -> torch.Tensor:
        """See :class:`Runner`."""
        with self._ctx(fp32):
            out: torch.Tensor = self.model(clip)
        return out

    def prepare(self, shapes: dict[str, tuple[Shape, ...]]) -> None:
        """Nothing to prepare."""

    def describe(self) -> str:
        """``torch fp32 channels_last``."""
        kept = (f" ({len(self.fp32_layers)} conv kept fp32: this CPU's bf16 kernel fails the "
                "check)" if self.fp32_layers else "")
        return f"torch {self.precision}" + (" channels_last" if self.channels_last else "") + kept


# --------------------------------------------------------------------------------- openvino


class _Entry(torch.nn.Module):
    """One entry point of a network as a module, for tracing."""

    def __init__(self, net: torch.nn.Module, method: str) -> None:
        super().__init__()
        self.net = net
        self.method = method

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        fn = self.net if self.method == "forward" else getattr(self.net, self.method)
        out: torch.Tensor = fn(*args)
        return out


def state_digest(model: torch.nn.Module) -> str:
    """sha256 over the names, shapes, dtypes and bytes of a module's state dict."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        # reshape(-1): a channels_last weight with 1x1 kernels counts as contiguous but keeps
        # a last stride > 1, which view(uint8) refuses
        flat = t.contiguous().reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


_SIMPLE = (bool, int, float, str, type(None))


def structure_digest(model: torch.nn.Module) -> str:
    """sha256 over the module tree and each module's plain settings (flags, sizes, modes).

    Settings without weights (``local_upsample``, ``compat``, ...) change the traced graph but
    not the state dict, so the IR cache key needs them besides the weights' identity.
    """
    h = hashlib.sha256()
    for name, mod in model.named_modules():
        plain = sorted(
            (k, v) for k, v in vars(mod).items()
            if not k.startswith("_") and k != "training" and (
                isinstance(v, _SIMPLE)
                or (isinstance(v, tuple) and all(isinstance(x, _SIMPLE) for x in v)))
        )
        h.update(f"{name}:{type(mod).__qualname__}:{plain!r};".encode())
    return h.hexdigest()


def traceable_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float32, contiguous, eval-mode copy of ``model`` without run-time diagnostics.

    The deformable convolution's "offsets are large" check reads a value back to Python, which
    would bake a branch into a traced graph; the copy marks it as already done.
    """
    net = copy.deepcopy(model).float().eval()
    net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    for mod in net.modules():
        if hasattr(mod, "_warned"):
            setattr(mod, "_warned", True)  # noqa: B010 - a plain attribute, not a module
    return net


def convert_entry(
    net: torch.nn.Module, method: str, shapes: Sequence[Shape], seed: int = 0
) -> Any:
    """``openvino.convert_model`` of one entry point at static ``shapes`` (an ``ov.Model``)."""
    import openvino as ov

    # tracing cannot record inference tensors: leave an enclosing inference_mode for it
    with torch.inference_mode(False), torch.no_grad(), _quiet_tracing(), keep_sigaltstack():
        gen = torch.Generator().manual_seed(seed)
        example = tuple(torch.rand(*s, generator=gen) for s in shapes)
        return ov.convert_model(_Entry(net, method), example_input=example,
                                input=[list(s) for s in shapes])


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int),
                ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def keep_sigaltstack() -> Any:
    """Restore the calling thread's alternate signal stack after OpenVINO calls (Linux).

    Creating an ``ov.Core`` or compiling a model installs OpenVINO's own alternate signal stack
    on the calling thread and frees it with the objects; the next signal (Ctrl-C: SIGINT, handled
    with ``SA_ONSTACK``) then runs on freed memory and the process dies of SIGSEGV. Measured
    with OpenVINO 2026.4: ``sigaltstack`` changes from faulthandler's 16 kB stack to an 11 kB
    one on ``ov.Core()``; ``os.kill(os.getpid(), SIGINT)`` after the runner is freed crashed.
    """
    libc: Any = None
    saved = _StackT()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.sigaltstack(None, ctypes.byref(saved)) != 0:
            libc = None
    except (OSError, AttributeError):
        libc = None
    try:
        yield
    finally:
        if libc is not None:
            libc.sigaltstack(ctypes.byref(saved), None)


@contextlib.contextmanager
def _quiet_tracing() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class OpenVINORunner:
    """OpenVINO on the CPU: one compiled model per (entry point, input shapes, precision)."""

    name = "openvino"

    def __init__(
        self,
        model: torch.nn.Module,
        precision: str,
        *,
        threads: int | None = None,
        cache_dir: Path | None = None,
        model_id: str | None = None,
        pinning: bool = False,
    ) -> None:
        """``cache_dir``: ``None`` → :func:`~satvsr_cli.engine.cpu.user_cache_dir`; ``model_id``
        names the weights in cache keys (``None``: a digest of the state dict)."""
        if precision not in ("fp32", "bf16"):
            raise BackendError(f"--backend openvino supports fp32 and bf16, not {precision}")
        self.model = model
        self.precision = precision
        self.threads = threads
        self.pinning = pinning
        self.cache = (cache_dir or user_cache_dir()) / "openvino"
        self.model_id = model_id or state_digest(model)
        self.structure = structure_digest(model)  # configuration without weights (cache key)
        self.faulty: list[str] = []
        if precision == "bf16":
            from satvsr_cli.engine.kernelcheck import faulty_bf16_convs

            # OpenVINO shares oneDNN's bf16 kernels and cannot keep single layers in fp32
            self.faulty = faulty_bf16_convs(model)
            if self.faulty:
                self.precision = "fp32"
        with keep_sigaltstack():  # every OpenVINO call that may replace it
            import openvino as ov

            self.ov = ov
            self._open()

    def _open(self) -> None:
        self.core = self.ov.Core()
        self._net: torch.nn.Module | None = None
        self._compiled: dict[tuple[str, tuple[Shape, ...], str], Any] = {}
        self.conversions = 0
        self.compilations = 0
        try:
            (self.cache / "blobs").mkdir(parents=True, exist_ok=True)
            self.core.set_property({"CACHE_DIR": str(self.cache / "blobs")})
            self._disk = True
        except OSError:
            self._disk = False  # read-only home: convert in memory every time
        caps = self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        self.bf16_native = "BF16" in caps

    # ----- conversion and compilation
    def _key(self, method: str, shapes: tuple[Shape, ...]) -> str:
        text = (f"{IR_FORMAT}|{self.model_id}|{self.structure}|{type(self.model).__name__}|"
                f"{method}|{shapes}|"
                f"ov {self.ov.__version__}|torch {torch.__version__}")
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _ir(self, method: str, shapes: tuple[Shape, ...]) -> Any:
        """The converted model: a cached IR path, or an in-memory ``ov.Model``."""
        xml = self.cache / "ir" / f"{self._key(method, shapes)}.xml"
        if self._disk and xml.is_file() and xml.with_suffix(".bin").is_file():
            return str(xml)
        if self._net is None:
            self._net = traceable_copy(self.model)
        ov_model = convert_entry(self._net, method, shapes)
        self.conversions += 1
        if not self._disk:
            return ov_model
        try:
            xml.parent.mkdir(parents=True, exist_ok=True)
            tmp = xml.with_name(f"{xml.stem}.{os.getpid()}.tmp.xml")
            self.ov.save_model(ov_model, str(tmp), compress_to_fp16=False)
            os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
            os.replace(tmp, xml)
        except OSError:
            return ov_model
        return str(xml)

    def _config(self, precision: str) -> dict[str, Any]:
        hint = "bf16" if precision == "bf16" and self.bf16_native else "f32"
        cfg: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": hint,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": self.pinning,
        }
        if self.threads:
            cfg["INFERENCE_NUM_THREADS"] = int(self.threads)
        return cfg

    def _request(self, method: str, shapes: tuple[Shape, ...], fp32: bool) -> Any:
        prec = "fp32" if fp32 else self.precision
        key = (method, shapes, prec)
        req = self._compiled.get(key)
        if req is None:
            with keep_sigaltstack():
                compiled = self.core.compile_model(self._ir(method, shapes), "CPU",
                                                   self._config(prec))
                req = compiled.create_infer_request()
            self.compilations += 1
            self._compiled[key] = req
        return req

    def _run(self, method: str, args: Sequence[torch.Tensor], fp32: bool) -> torch.Tensor:
        arrays = [np.ascontiguousarray(a.detach().float().cpu().numpy()) for a in args]
        shapes = tuple(tuple(a.shape) for a in arrays)
        req = self._request(method, shapes, fp32)
        with keep_sigaltstack():
            req.infer(arrays)
        out = np.array(req.get_output_tensor(0).data, copy=True)
        return torch.from_numpy(out)

    # ----- Runner
    def extract(self, frames: torch.Tensor, fp32: bool = False) -> torch.Tensor:
        """See :class:`Runner`."""
        return self._run("extract", [frames], fp32)

    def forward_window(
        self, clip: torch.Tensor, feats: torch.Tensor, fp32: bool = False
    ) -> torch.Tensor:
        """See :class:`Runner`."""
        return self._run("forward_window", [clip, feats], fp32)

    def forward(self, clip: torch.Tensor, fp32: bool = False) -> torch.Tensor:
        """See :class:`Runner`."""
        return self._run("forward", [clip], fp32)

    def prepare(self, shapes: dict[str, tuple[Shape, ...]]) -> None:
        """Convert and compile every entry point for ``shapes`` now."""
        for method, s in shapes.items():
            self._request(method, tuple(tuple(x) for x in s), False)

    def describe(self) -> str:
        """``openvino 2026.4 bf16``."""
        prec = self.precision if (self.precision != "bf16" or self.bf16_native) else "fp32"
        why = (f" (bf16 refused: this CPU's bf16 kernel fails the check for {len(self.faulty)} "
               "conv)" if self.faulty else "")
        return f"openvino {self.ov.__version__.split('-')[0]} {prec}{why}"


# ------------------------------------------------------------------------------------ open


def make_runner(
    backend: str,
    model: torch.nn.Module,
    device: torch.device,
    precision: str,
    *,
    threads: int | None = None,
    model_id: str | None = None,
    cache_dir: Path | None = None,
    channels_last: bool | None = None,
) -> Runner:
    """A runner of a resolved backend (``torch`` or ``openvino``)."""
    if backend == "openvino":
        return OpenVINORunner(model, precision, threads=threads, cache_dir=cache_dir,
                              model_id=model_id)
    return TorchRunner(model, device, precision, channels_last=channels_last)


def open_runner(
    requested: str,
    model: torch.nn.Module,
    device: torch.device,
    *,
    precision_for: Callable[[str], str],
    shapes: dict[str, tuple[Shape, ...]] | None,
    threads: int | None = None,
    model_id: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> Runner:
    """The runner for ``--backend requested``, prepared for ``shapes``.

    ``precision_for(backend)`` gives the precision of a backend (the precision rule depends on
    it). ``auto`` falls back to torch, with a warning, when OpenVINO cannot convert or compile
    the network; an explicit ``openvino`` raises :class:`BackendError` instead.
    """
    backend = resolve_backend(requested, device)
    if backend == "openvino":
        try:
            runner = make_runner("openvino", model, device, precision_for("openvino"),
                                 threads=threads, model_id=model_id)
            if shapes:
                runner.prepare(shapes)
            return runner
        except SatvsrError:
            raise
        except Exception as exc:  # noqa: BLE001 - any conversion failure
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            if (requested or "auto").lower() == "openvino":
                raise BackendError(f"--backend openvino: the network does not convert ({first})"
                                   ) from None
            if warn is not None:
                warn(f"openvino: the network does not convert ({first}); using torch")
    return make_runner("torch", model, device, precision_for("torch"), threads=threads)


def env_threads() -> int | None:
    """``$SATVSR_THREADS`` as a positive int, else ``None``."""
    raw = os.environ.get("SATVSR_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def job_compute(
    backend: str, precision: str, threads: int | None, device: torch.device, model: Any
) -> tuple[int | None, str, str, str]:
    """Threads, backend and precision of a job before its runner is opened.

    Returns ``(threads, backend, precision, reason)``: threads set for torch on CPU (``None`` on
    other devices), the backend ``auto`` resolves to, and the precision by the rule of
    :mod:`satvsr_cli.engine.precision` for that backend, with its reason.
    """
    from satvsr_cli.engine.cpu import set_threads
    from satvsr_cli.engine.precision import choose_precision, weights_precision

    if threads is not None and threads < 1:
        raise BackendError(f"--threads must be >= 1, got {threads}")
    n = set_threads(threads or env_threads()) if device.type == "cpu" else None
    chosen = resolve_backend(backend, device)
    prec, why = choose_precision(precision, device, chosen, weights_precision(model))
    return n, chosen, prec, why


def compute_threads(threads: int | None, device: torch.device) -> int | None:
    """Set torch's CPU threads for a job on ``device``: ``threads``, else ``$SATVSR_THREADS``,
    else one per physical core. ``None`` (nothing set) off the CPU."""
    from satvsr_cli.engine.cpu import set_threads

    if threads is not None and threads < 1:
        raise BackendError(f"--threads must be >= 1, got {threads}")
    return set_threads(threads or env_threads()) if device.type == "cpu" else None
