from typer.testing import CliRunner

from satvsr_cli.catalog import describe_models
from satvsr_cli.cli import app
from satvsr_cli.models import list_models


def test_describe_models_counts_paper_configs_on_meta_device():
    rows = {r.name: r for r in describe_models(lr_size=(160, 160), macs=True)}
    assert set(rows) == set(list_models())
    assert rows["msdtgp"].params == 14_174_083
    assert rows["lgtd"].params == 20_980_929
    assert rows["lgtd_lite"].params == 6_877_844
    # networks.md §7.9: LGTD-HAT5 743.4 GMAC and LGTD-lite 294.4 GMAC per frame at LR 160×160
    assert abs(rows["lgtd"].gmac - 743.4) / 743.4 < 0.02
    assert abs(rows["lgtd_lite"].gmac - 294.4) / 294.4 < 0.02
    assert rows["msdtgp_small"].gmac < 30 and rows["lgtd_small"].gmac < 30


def test_models_command_lists_every_network():
    result = CliRunner().invoke(app, ["models", "--no-macs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in list_models():
        assert name in result.output


def test_models_command_rejects_bad_size():
    result = CliRunner().invoke(app, ["models", "--size", "big"])
    assert result.exit_code != 0


def _number_cells():
    rows = describe_models(macs=False)
    return rows, [f"{r.params:,}" for r in rows]


def test_models_piped_at_80_columns_truncates_nothing():
    rows, numbers = _number_cells()
    result = CliRunner().invoke(app, ["models", "--no-macs"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    for r, n in zip(rows, numbers, strict=True):
        assert r.name in result.output and n in result.output
        for wid in r.weights:
            assert wid in result.output
        assert r.description in result.output  # a pipe gets whole lines


def test_models_terminal_at_80_columns_keeps_numbers_and_names_whole():
    rows, numbers = _number_cells()
    env = {"COLUMNS": "80", "FORCE_COLOR": "1", "NO_COLOR": ""}
    result = CliRunner().invoke(app, ["models", "--no-macs"], env=env)
    assert result.exit_code == 0, result.output
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for r, n in zip(rows, numbers, strict=True):
        assert re.search(rf"^ ?{r.name}\s.*\s{n}\s", text, re.MULTILINE), (r.name, text)
    assert "lgtd_small.v1" in text
    assert "msdtgp: MSDTGP" in text  # descriptions below the table when the line is short


def test_models_json_lists_every_network_with_exact_numbers():
    import json

    result = CliRunner().invoke(app, ["models", "--json", "--size", "32x16"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    by_name = {d["name"]: d for d in data}
    assert set(by_name) == set(list_models())
    assert by_name["msdtgp"]["params"] == 14_174_083
    assert by_name["lgtd_small"]["weights"][0] == "lgtd_small.v2"  # the default first
    assert "lgtd_small.v1" in by_name["lgtd_small"]["weights"]
    assert by_name["msdtgp_small"]["gmac"] > 0 and by_name["msdtgp"]["lr_size"] == [32, 16]
