"""Import the authors' PyTorch checkpoints (``.pth`` state dicts) into the satvsr weights format.

The file is read with ``torch.load(weights_only=True)`` (plain tensors and containers, no code),
DataParallel ``module.`` prefixes are stripped, the family's ``checkpoint_filter_fn`` maps the
upstream names and layouts (MSDTGP: names as they are; LGTD: dead keys dropped, HAT index
buffers checked and dropped, OCAB bias tables reordered), and the result must match the network
key for key and shape for shape before anything is written. The output is a normal weights entry
(``.safetensors`` + ``.json``) whose manifest names the source file and its sha256.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satvsr_cli.errors import InputError, ModelError, OutputError, WeightsError
from satvsr_cli.weights import save_weights, sha256_file

if TYPE_CHECKING:
    import torch

#: Keys under which training scripts commonly nest the state dict.
_NESTED = ("state_dict", "model", "model_state_dict", "params", "net", "params_ema")


def _few(keys: list[str], n: int = 3) -> str:
    shown = ", ".join(keys[:n])
    return f"{shown}{f', … ({len(keys)} in all)' if len(keys) > n else ''}"


def _reason(exc: BaseException) -> str:
    """The useful part of torch.load's long weights_only message, on one line."""
    text = str(exc)
    m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", text, re.DOTALL)
    if m:
        text = m.group(1)
        text = text.split(" was not an allowed global")[0].replace("GLOBAL ", "")
    text = " ".join(text.split())
    if not text:
        return type(exc).__name__
    return text if len(text) <= 120 else text[:119] + "…"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth``/``.pt`` file, loaded without unpickling code.

    Raises:
        WeightsError: not a state dict of tensors, or the file needs code to load.
    """
    import torch

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:
        raise WeightsError(
            f"{path}: not loadable as plain tensors with weights_only=True ({_reason(exc)})"
        ) from None
    for _ in range(2):  # {"state_dict": {...}} and the like
        if isinstance(obj, Mapping) and not any(hasattr(v, "shape") for v in obj.values()):
            nested = next((obj[k] for k in _NESTED if isinstance(obj.get(k), Mapping)), None)
            if nested is not None:
                obj = nested
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path}: entries that are not tensors: {_few(bad)}")
    return {str(k): v for k, v in obj.items()}


def _filter(
    state: Mapping[str, torch.Tensor], family: str, model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    from satvsr_cli.models import lgtd_checkpoint_filter_fn, msdtgp_checkpoint_filter_fn

    if family == "lgtd":
        return lgtd_checkpoint_filter_fn(state, model)
    if family == "msdtgp":
        return msdtgp_checkpoint_filter_fn(state)
    raise WeightsError(f"no checkpoint mapping for the {family} family")  # pragma: no cover


def _mismatch(mapped: Mapping[str, torch.Tensor], model: torch.nn.Module) -> list[str]:
    """What keeps ``mapped`` from loading strictly into ``model`` (empty when it fits)."""
    want = model.state_dict()
    missing = [k for k in want if k not in mapped]
    unexpected = [k for k in mapped if k not in want]
    shapes = [
        f"{k} {tuple(mapped[k].shape)} vs {tuple(v.shape)}"
        for k, v in want.items()
        if k in mapped and tuple(mapped[k].shape) != tuple(v.shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing {_few(missing)}")
    if unexpected:
        parts.append(f"unexpected {_few(unexpected)}")
    if shapes:
        parts.append(f"shape mismatch {_few(shapes, 2)}")
    return parts


def _fitting_presets(state: Mapping[str, torch.Tensor], network: str) -> list[str]:
    """Registered networks (any family, default configuration) that ``state`` would fit."""
    import torch

    from satvsr_cli.models import build_model, get_spec, list_models

    fits = []
    for name in list_models():
        if name == network:
            continue
        try:
            with torch.device("meta"):  # shapes only: no memory, no initialisation
                candidate = build_model(name)
            if not _mismatch(_filter(state, get_spec(name).family, candidate), candidate):
                fits.append(name)
        except (ValueError, WeightsError):
            continue
    return fits


def map_state_dict(
    state: Mapping[str, torch.Tensor], network: str, model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """Upstream names → satvsr names for ``network``'s family, checked strictly against ``model``.

    Raises:
        WeightsError: missing or unexpected keys, or shapes that differ (one line, a few listed,
            and the registered networks the checkpoint would fit, if any).
    """
    from satvsr_cli.models import get_spec

    family = get_spec(network).family
    stripped = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        mapped = _filter(stripped, family, model)
    except ValueError as exc:
        raise WeightsError(f"not an upstream {family.upper()} state dict: {exc}") from None
    parts = _mismatch(mapped, model)
    if parts:
        fits = _fitting_presets(stripped, network)
        hint = f"; it fits --model {' or '.join(fits)}" if fits else ""
        raise WeightsError(
            f"checkpoint does not fit '{network}' ({len(model.state_dict())} tensors): "
            + "; ".join(parts) + hint
        )
    return {k: mapped[k] for k in model.state_dict()}


def import_checkpoint(
    source: str | Path,
    network: str,
    out: str | Path,
    *,
    config: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert an upstream checkpoint into a satvsr weights entry and return its path.

    Args:
        source: the ``.pth`` (or ``.pt``) file, e.g. MSDTGP's DataParallel release.
        network: the registry name the checkpoint was trained as (``msdtgp``, ``lgtd``...).
        out: the ``.safetensors`` to write; its ``.json`` manifest goes beside it.
        config: constructor overrides when the checkpoint is not the preset's configuration.
        overwrite: replace an existing output.

    Raises:
        InputError: the source is missing. OutputError: the output exists. ModelError: an
        unknown network. WeightsError: the checkpoint does not load or does not fit.
    """
    import torch

    from satvsr_cli.models import build_model

    src = Path(source)
    dst = Path(out)
    if dst.suffix != ".safetensors":
        raise OutputError(f"{dst}: the output must be a .safetensors file")
    for p in (dst, dst.with_suffix(".json")):
        if p.exists() and not overwrite:
            raise OutputError(f"{p} exists; pass --overwrite to replace it")
    cfg = dict(config or {})
    try:
        model = build_model(network, **cfg)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"'{network}' does not build with {cfg}: {exc}") from None
    state = read_state_dict(src)
    mapped = map_state_dict(state, network, model)
    with torch.no_grad():
        model.load_state_dict(mapped, strict=True)
    digest = sha256_file(src)
    dropped = sorted({k.removeprefix("module.") for k in state} - set(mapped))
    source_info = {
        "file": src.name,
        "sha256": digest,
        "tensors": len(state),
        "module_prefix": any(k.startswith("module.") for k in state),
        "dropped": dropped,
    }
    return save_weights(
        model,
        dst,
        network=network,
        config=cfg,
        data={},
        recipe={"imported": True},
        metrics={},
        extra={"imported_from": source_info},
    )
