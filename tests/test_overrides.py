"""The one `--config_overrides` parser: typed values, unknown fields and bad values are errors naming the field."""

import pytest

from maskspec_hf import MaskSpecConfig
from maskspec_hf.loading import apply_config_overrides, parse_config_overrides


def test_values_parse_as_json_or_python_spellings():
    parsed = parse_config_overrides(
        "norm_pix_loss=False, num_hidden_layers=2,hidden_act=gelu,qkv_bias=true,mask_ratio=0.6"
    )
    assert parsed == {
        "norm_pix_loss": False,
        "num_hidden_layers": 2,
        "hidden_act": "gelu",
        "qkv_bias": True,
        "mask_ratio": 0.6,
    }
    config = apply_config_overrides(MaskSpecConfig.from_preset("tiny"), parsed)
    assert (config.norm_pix_loss, config.num_hidden_layers, config.mask_ratio) == (False, 2, 0.6)


def test_unknown_fields_and_bad_values_are_errors_naming_the_field():
    with pytest.raises(ValueError, match="'num_hiden_layers' is not a MaskSpecConfig field.*'num_hidden_layers'"):
        parse_config_overrides("num_hiden_layers=2")
    with pytest.raises(ValueError, match="key=value"):
        parse_config_overrides("num_hidden_layers")
    with pytest.raises(ValueError, match="'num_hidden_layers'"):
        apply_config_overrides(MaskSpecConfig(), "num_hidden_layers=abc")
    with pytest.raises(ValueError, match="mask_ratio"):
        apply_config_overrides(MaskSpecConfig(), "mask_ratio=0.99")
