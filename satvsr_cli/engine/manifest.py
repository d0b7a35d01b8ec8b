"""The job manifest ``<output>.satvsr.json``: what a run is, how far it got; it drives ``--resume``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from satvsr_cli import __version__
from satvsr_cli.errors import OutputError
from satvsr_cli.fsutil import atomic_write_text

FORMAT = "satvsr-job/1"


def manifest_path(output: Path) -> Path:
    """``OUT.satvsr.json`` beside the output (for a folder ``OUT/``: ``OUT.satvsr.json``)."""
    return output.with_name(output.name + ".satvsr.json")


def write_manifest(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (temp file in the same folder, then ``os.replace``)."""
    payload = json.dumps({"format": FORMAT, "satvsr_version": __version__, **data}, indent=1,
                         sort_keys=True, default=str)
    try:
        atomic_write_text(path, payload + "\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the job manifest ({exc.strerror or exc})") from None


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path``, or ``None`` when it is missing or not a satvsr job manifest."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two parameter dicts (JSON-normalised), sorted."""
    a = json.loads(json.dumps(old, sort_keys=True, default=str))
    b = json.loads(json.dumps(new, sort_keys=True, default=str))
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
