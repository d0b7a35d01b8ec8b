"""Weights files: a safetensors file plus a JSON manifest; verified before loading, never unpickled.

Layout of a weights entry ``NAME.safetensors`` + ``NAME.json``. The manifest records the network
name and configuration (the keyword overrides given to :func:`satvsr_cli.models.build_model`),
scale, frames, input value range, the sha256 of the safetensors file, the data and recipe that
produced it and the metrics measured. :func:`load_weights` checks the sha256, rebuilds the network
from the manifest and loads the tensors strictly; any mismatch is a one-line
:class:`~satvsr_cli.errors.WeightsError`.

Shipped weights are package data in ``satvsr_cli/weights_data/`` (so a wheel install has them), or
the folder ``$SATVSR_WEIGHTS_DIR`` names instead. Each has a stable id, its file name without
``.safetensors``: ``lgtd_small.v1``. An id can be given without its version (``lgtd_small`` → the
highest ``.vN`` shipped) wherever a weights file is accepted. The file ``DEFAULT`` names the entry
that ``satvsr upscale`` uses when no model is given.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satvsr_cli import __version__
from satvsr_cli.errors import ModelError, WeightsError
from satvsr_cli.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator

    import torch

    from satvsr_cli.models.registry import ModelSpec

FORMAT = "satvsr-weights/1"
_HASH_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Streamed sha256 of a file, as lowercase hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What a weights file is and how it was made."""

    network: str
    config: dict[str, Any]
    sha256: str
    path: Path
    scale: int = 4
    frames: int = 5
    channels: int = 3
    value_range: tuple[float, float] = (0.0, 1.0)
    data: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    satvsr_version: str = __version__
    created: str = ""
    #: fp32-vs-bf16 PSNR on the dev sets (``scripts/check_precision.py``; ``--precision auto``)
    precision: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        """The JSON file beside the weights."""
        return self.path.with_suffix(".json")

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to disk."""
        return {
            "format": FORMAT,
            "network": self.network,
            "config": self.config,
            "weights_file": self.path.name,
            "sha256": self.sha256,
            "scale": self.scale,
            "frames": self.frames,
            "channels": self.channels,
            "value_range": list(self.value_range),
            "data": self.data,
            "recipe": self.recipe,
            "metrics": self.metrics,
            "extra": self.extra,
            "satvsr_version": self.satvsr_version,
            "created": self.created,
            **({"precision": self.precision} if self.precision else {}),
        }


def save_weights(
    model: torch.nn.Module,
    path: str | Path,
    *,
    network: str,
    config: dict[str, Any],
    data: dict[str, Any],
    recipe: dict[str, Any],
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``path`` (.safetensors) and its manifest ``path.with_suffix('.json')`` atomically.

    Args:
        model: the network; its ``state_dict`` is stored (float tensors as they are).
        path: destination; the suffix is forced to ``.safetensors``.
        network: registry name, e.g. ``"lgtd_small"``.
        config: the keyword overrides that rebuild it with ``build_model(network, **config)``.
        data: where the training data came from.
        recipe: how it was trained (optimiser, schedule, iterations...).
        metrics: what was measured (e.g. validation PSNR/SSIM per root).
        extra: anything else worth recording (wall time, hardware, versions).

    Returns:
        The path of the safetensors file.
    """
    from safetensors.torch import save

    from satvsr_cli.models import get_spec

    spec = get_spec(network)
    out = Path(path).with_suffix(".safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = save(state, metadata={"format": FORMAT, "network": network})
    atomic_write_bytes(out, payload)
    manifest = Manifest(
        network=network,
        # the full keyword set, so that later changes to a preset's defaults cannot change
        # what these weights rebuild into
        config={**spec.default_kwargs, **config},
        sha256=hashlib.sha256(payload).hexdigest(),
        path=out,
        scale=spec.scale,
        frames=spec.frames,
        data=data,
        recipe=recipe,
        metrics=metrics,
        extra=dict(extra or {}),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    text = json.dumps(manifest.to_json(), indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(manifest.manifest_path, text.encode())
    return out


def read_manifest(path: str | Path) -> Manifest:
    """Read the manifest of a weights entry.

    ``path`` may name the .safetensors or the .json, or be the id of a shipped entry
    (``lgtd_small.v1``, or ``lgtd_small`` for its newest version) when no such file exists.
    """
    p = find_weights(path)
    if p.suffix not in (".safetensors", ".json"):
        raise WeightsError(f"{p}: weights must be a .safetensors file with a .json manifest beside it")
    mpath = p.with_suffix(".json")
    if not mpath.is_file():
        raise WeightsError(f"{mpath}: manifest not found")
    try:
        raw = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{mpath}: unreadable manifest ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise WeightsError(f"{mpath}: not a satvsr weights manifest (format {FORMAT} expected)")
    try:
        return Manifest(
            network=str(raw["network"]),
            config=dict(raw.get("config") or {}),
            sha256=str(raw["sha256"]),
            path=mpath.with_name(str(raw.get("weights_file") or p.with_suffix(".safetensors").name)),
            scale=int(raw.get("scale", 4)),
            frames=int(raw.get("frames", 5)),
            channels=int(raw.get("channels", 3)),
            value_range=(float(raw["value_range"][0]), float(raw["value_range"][1]))
            if "value_range" in raw
            else (0.0, 1.0),
            data=dict(raw.get("data") or {}),
            recipe=dict(raw.get("recipe") or {}),
            metrics=dict(raw.get("metrics") or {}),
            extra=dict(raw.get("extra") or {}),
            satvsr_version=str(raw.get("satvsr_version", "")),
            created=str(raw.get("created", "")),
            precision=dict(raw.get("precision") or {}),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise WeightsError(f"{mpath}: malformed manifest ({exc})") from None


def load_weights(
    path: str | Path, *, network: str | None = None, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Manifest]:
    """Rebuild the network a weights entry describes and load its tensors, after checking them.

    Raises:
        WeightsError: missing files, sha256 mismatch, a network other than ``network``, or
            tensors that do not fit the configuration.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    from satvsr_cli.models import build_model, get_spec

    manifest = read_manifest(path)
    if network is not None and manifest.network != network:
        raise WeightsError(
            f"{manifest.path}: weights are for '{manifest.network}', not '{network}'"
        )
    if not manifest.path.is_file():
        raise WeightsError(f"{manifest.path}: weights file not found")
    payload = manifest.path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != manifest.sha256:
        raise WeightsError(
            f"{manifest.path}: sha256 {digest[:12]}… does not match the manifest "
            f"({manifest.sha256[:12]}…); the file is corrupt or was replaced"
        )
    try:
        spec = get_spec(manifest.network)
    except ModelError as exc:
        raise WeightsError(f"{manifest.path}: {exc}") from None
    if (manifest.scale, manifest.frames) != (spec.scale, spec.frames):
        raise WeightsError(
            f"{manifest.path}: manifest says scale {manifest.scale}, {manifest.frames} frames; "
            f"'{spec.name}' is x{spec.scale} with {spec.frames} frames"
        )
    try:
        model = build_model(manifest.network, **manifest.config)
    except (ModelError, TypeError, ValueError) as exc:
        raise WeightsError(f"{manifest.path}: configuration does not build: {exc}") from None
    try:
        state = load(payload)
    except SafetensorError as exc:
        raise WeightsError(f"{manifest.path}: unreadable safetensors ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        n_missing = str(exc).count("Missing key") + str(exc).count("size mismatch")
        raise WeightsError(
            f"{manifest.path}: tensors do not match '{manifest.network}' with config "
            f"{manifest.config} ({first}{'…' if n_missing else ''})"
        ) from None
    model.eval()
    # the precision rule (engine.precision) reads the manifest's ``precision`` block
    object.__setattr__(model, "weights_manifest", manifest)
    return model.to(device), manifest


def weights_dir() -> Path:
    """The folder of shipped weights: ``$SATVSR_WEIGHTS_DIR`` or the package's ``weights_data/``."""
    env = os.environ.get("SATVSR_WEIGHTS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "weights_data"


_SUFFIX = ".safetensors"
_VERSION = re.compile(r"^(?P<base>.+)\.v(?P<n>\d+)$")


def weights_id(path: str | Path) -> str:
    """The id of a weights entry: its file name without ``.safetensors`` (``lgtd_small.v1``)."""
    name = Path(path).name
    return name.removesuffix(_SUFFIX)


def shipped_weights() -> list[Path]:
    """Every shipped weights entry (safetensors files with a manifest beside them), sorted."""
    d = weights_dir()
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("*" + _SUFFIX) if p.with_suffix(".json").is_file())


def shipped_ids() -> list[str]:
    """The ids of the shipped entries, sorted."""
    return [weights_id(p) for p in shipped_weights()]


def lookup_shipped(ref: str) -> Path | None:
    """The shipped entry with id ``ref``; without a ``.vN`` suffix, its highest version."""
    ref = ref.removesuffix(_SUFFIX)
    found: list[tuple[int, Path]] = []
    for p in shipped_weights():
        wid = weights_id(p)
        if wid == ref:
            return p
        m = _VERSION.match(wid)
        if m and m["base"] == ref:
            found.append((int(m["n"]), p))
    return max(found)[1] if found else None


def find_weights(ref: str | Path) -> Path:
    """``ref`` as a path when it exists (or looks like one), else the shipped entry of that id.

    Raises:
        WeightsError: ``ref`` is neither an existing file nor a shipped id.
    """
    p = Path(ref)
    if p.exists() or p.suffix in (_SUFFIX, ".json", ".pth", ".pt") or len(p.parts) > 1:
        return p
    hit = lookup_shipped(str(ref))
    if hit is None:
        ids = ", ".join(shipped_ids()) or "none"
        raise WeightsError(f"{ref}: no such weights file or shipped id (shipped: {ids})")
    return hit


#: The file naming the default weights for lossy-coded input (H.264/H.265 video, JPEG frames),
#: beside ``DEFAULT`` (the default for everything else). Optional: without it, ``DEFAULT`` serves
#: every input.
LOSSY_MARKER = "DEFAULT_LOSSY"


def default_weights(*, lossy: bool = False) -> Path | None:
    """The entry named in ``DEFAULT`` of the shipped folder, else ``None``; with ``lossy``, the
    one named in ``DEFAULT_LOSSY`` when that file exists (trained on coded input)."""
    for marker_name in ((LOSSY_MARKER, "DEFAULT") if lossy else ("DEFAULT",)):
        marker = weights_dir() / marker_name
        name = marker.read_text().strip() if marker.is_file() else ""
        if name:
            return lookup_shipped(name)
    return None


def default_choice(lossy_coding: str | None) -> tuple[Path | None, str]:
    """The default weights for an input and why: ``lossy_coding`` is what
    :meth:`~satvsr_cli.io.base.SourceInfo.lossy_coding` says (``None``: lossless)."""
    clean = default_weights()
    robust = default_weights(lossy=True)
    paired = robust is not None and robust != clean
    if lossy_coding is not None and paired:
        return robust, f"default for lossy input ({lossy_coding})"
    return clean, "default for lossless input" if paired else "default"


def shipped_for(network: str) -> list[Path]:
    """Shipped weights entries whose manifest names ``network`` (the default one first)."""
    found = []
    for p in shipped_weights():
        try:
            if read_manifest(p).network == network:
                found.append(p)
        except WeightsError:
            continue
    default = default_weights()
    found.sort(key=lambda p: (p != default, p.name))
    return found


@dataclass(frozen=True)
class LoadedModel:
    """The network a command runs, with what is known about it.

    Attributes:
        network: the module (eval mode, on the asked device).
        spec: its registry entry (``None`` for a network built outside the registry).
        manifest: the weights manifest (``None`` for an untrained network).
        label: a display name, e.g. ``"lgtd_small (lgtd_small.safetensors)"``.
    """

    network: torch.nn.Module
    spec: ModelSpec | None
    manifest: Manifest | None
    label: str

    @property
    def name(self) -> str | None:
        """The registry name (``None`` outside the registry)."""
        return self.spec.name if self.spec is not None else None

    @property
    def sha256(self) -> str | None:
        """The sha256 of the weights file (``None`` for an untrained network)."""
        return self.manifest.sha256 if self.manifest is not None else None

    def __iter__(self) -> Iterator[Any]:
        """``net, label, sha256 = resolve_model(...)`` (the older tuple form) keeps working."""
        return iter((self.network, self.label, self.sha256))


def resolve_model(
    model: str | None,
    weights: str | Path | None,
    device: str | torch.device = "cpu",
    *,
    allow_random: bool = False,
    default: Path | None = None,
) -> LoadedModel:
    """Pick the network for a command: ``--weights`` > shipped weights for ``--model`` > default
    (``default`` when given, e.g. the one :func:`default_choice` picks for the input, else the
    ``DEFAULT`` entry).

    Returns:
        The :class:`LoadedModel` (network in eval mode on ``device``, spec, manifest, label).

    Raises:
        WeightsError: nothing suitable is shipped, or the weights do not load.
        ModelError: an unknown network name.
    """
    from satvsr_cli.models import build_model, get_spec

    if weights is not None:
        net, manifest = load_weights(weights, network=model, device=device)
        return LoadedModel(net, get_spec(manifest.network), manifest,
                           f"{manifest.network} ({Path(manifest.path).name})")
    if model is None:
        default = default or default_weights()
        if default is None:
            raise WeightsError(
                f"no default weights shipped in {weights_dir()}; pass --model NAME or --weights PATH"
            )
        net, manifest = load_weights(default, device=device)
        return LoadedModel(net, get_spec(manifest.network), manifest,
                           f"{manifest.network} ({default.name})")
    spec = get_spec(model)  # unknown names raise ModelError listing the valid ones
    candidates = shipped_for(model)
    if candidates:
        net, manifest = load_weights(candidates[0], device=device)
        return LoadedModel(net, spec, manifest, f"{manifest.network} ({candidates[0].name})")
    if not allow_random:
        raise WeightsError(
            f"no shipped weights for '{model}'; pass --weights PATH (or --allow-random to run "
            "an untrained network)"
        )
    net = build_model(model).eval().to(device)
    return LoadedModel(net, spec, None, f"{model} (random init)")
