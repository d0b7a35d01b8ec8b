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
