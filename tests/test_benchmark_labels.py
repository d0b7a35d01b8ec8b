"""`satvsr benchmark`: one label and one sha256 per row (shipped vs same-named files), and
Markdown output in speed mode."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from helpers import tiny_weights
from typer.testing import CliRunner

from satvsr_cli.cli import app
from satvsr_cli.eval import unique_labels
from satvsr_cli.weights import sha256_file

runner = CliRunner()


@pytest.fixture
def shipped_and_other(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A shipped ``lgtd_small.v1`` and a different file of the same name in ``other/``."""
    shipped = tiny_weights(tmp_path / "shipped" / "lgtd_small.v1.safetensors", 0)
    (tmp_path / "shipped" / "DEFAULT").write_text("lgtd_small.v1\n")
    monkeypatch.setenv("SATVSR_WEIGHTS_DIR", str(tmp_path / "shipped"))
    other = tiny_weights(tmp_path / "other" / "lgtd_small.v1.safetensors", 1)
    return shipped, other


@pytest.fixture
def dataset(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "GT" / "000"
    folder.mkdir(parents=True)
    for t in range(2):
        iio.imwrite(folder / f"{t:03d}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return tmp_path / "data"


def test_unique_labels_name_the_source_then_number():
    labels = ["n (a.safetensors)", "n (a.safetensors)", "m (random init)", "m (random init)",
              "k (b.safetensors)"]
    sources = ["shipped a", "x/a.safetensors", None, None, "b.safetensors"]
    assert unique_labels(labels, sources) == [
        "n (shipped a)", "n (x/a.safetensors)", "m (random init)", "m (random init) #2",
        "k (b.safetensors)",
    ]
    # the same file twice: the source does not separate them, a number does
    assert unique_labels(["n (a)", "n (a)"], ["a", "a"]) == ["n (a)", "n (a) #2"]
    assert unique_labels(["x", "x", "x #2"], [None] * 3) == ["x", "x #2", "x #2 #2"]


def test_same_file_name_gives_two_rows_with_their_own_sha256(
    dataset, shipped_and_other, tmp_path
):
    shipped, other = shipped_and_other
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["benchmark", "--data", str(dataset), "--model", "lgtd_small",
                            "--weights", str(other), "--max-frames", "1", "--device", "cpu",
                            "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    rows = [row for row in doc["summary"] if row["kind"] == "network"]
    labels = [row["method"] for row in rows]
    assert labels == ["lgtd_small (shipped lgtd_small.v1)", f"lgtd_small ({other})"]
    want = {labels[0]: sha256_file(shipped), labels[1]: sha256_file(other)}
    assert want[labels[0]] != want[labels[1]]
    assert {row["method"]: row["weights_sha256"] for row in rows} == want
    assert doc["settings"]["weights_sha256"] == want
    assert {w["method"]: w["sha256"] for w in doc["settings"]["weights"]} == want
    assert [w["path"] for w in doc["settings"]["weights"]] == [str(shipped), str(other)]
    # per-clip results: one row per method, told apart
    assert sorted(row["method"] for row in doc["results"]) == sorted(["bicubic", *labels])
    # the two networks differ, so do their scores (the rows are not one row twice)
    assert rows[0]["psnr"] != rows[1]["psnr"]


def test_speed_markdown_prints_a_markdown_table(shipped_and_other, tmp_path):
    shipped, other = shipped_and_other
    out = tmp_path / "s.json"
    r = runner.invoke(app, ["benchmark", "--speed", "--markdown", "--model", "lgtd_small",
                            "--weights", str(other), "--size", "16x16", "--frames", "2",
                            "--device", "cpu", "--json", str(out)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("| method | LR size | frames | engine fps |")
    assert lines[1].startswith("|---|---|")
    assert lines[2].startswith("| lgtd_small (shipped lgtd_small.v1) | 16×16 | 2 |")
    assert lines[3].startswith(f"| lgtd_small ({other}) |")
    assert not any(ch in r.stdout for ch in "┃━┏│─")  # no rich box drawing
    doc = json.loads(out.read_text())["speed"]
    assert [d["method"] for d in doc] == ["lgtd_small (shipped lgtd_small.v1)",
                                         f"lgtd_small ({other})"]
    assert [d["weights_sha256"] for d in doc] == [sha256_file(shipped), sha256_file(other)]
