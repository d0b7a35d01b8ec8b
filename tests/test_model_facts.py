"""Facts about a network live on its registry spec."""

from __future__ import annotations

import pytest

from satvsr_cli.engine.memory import DEFAULT_BYTES_PER_LR_PIXEL, bytes_per_lr_pixel
from satvsr_cli.errors import ModelError
from satvsr_cli.models import get_spec, list_models
from satvsr_cli.models.registry import TINY_OVERRIDES, _model_class


def test_unknown_family_is_a_model_error_not_lgtd():
    with pytest.raises(ModelError, match="unknown network family 'srcnn'"):
        _model_class("srcnn")


def test_spec_owns_memory_figures_and_test_overrides():
    for name in list_models():
        spec = get_spec(name)
        assert spec.tiny_overrides == TINY_OVERRIDES.get(name, TINY_OVERRIDES.get(spec.family))
    assert bytes_per_lr_pixel(None, "lgtd_small") == get_spec("lgtd_small").bytes_per_lr_pixel
    assert bytes_per_lr_pixel(None, "msdtgp", half=True) == 115_000 // 2
    assert bytes_per_lr_pixel(object(), "not_registered") == DEFAULT_BYTES_PER_LR_PIXEL
