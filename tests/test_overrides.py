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


def test_every_loader_takes_the_attention_kernel_and_no_saved_model_keeps_it(tmp_path):
    from maskspec_hf import MaskSpecForPreTraining
    from maskspec_hf.data.labels import LabelSpace
    from maskspec_hf.loading import ModelArguments, load_classifier, load_encoder

    small = "num_hidden_layers=1,decoder_num_hidden_layers=1"
    folder = tmp_path / "pretrained"
    MaskSpecForPreTraining(apply_config_overrides(MaskSpecConfig.from_preset("tiny"), small)).save_pretrained(folder)
    labels = LabelSpace(names=["a", "b"], multi_label=False, lookup={"a": 0, "b": 1})
    for source in ("tiny", str(folder)):  # a preset (random init) and a checkpoint folder
        encoder, _ = load_encoder(source, config_overrides=small, attn_implementation="eager")
        classifier, _, _ = load_classifier(
            ModelArguments(model_name_or_path=source, config_overrides=small, attn_implementation="eager"), labels
        )
        assert encoder.config._attn_implementation == classifier.config._attn_implementation == "eager"
        default, _ = load_encoder(source, config_overrides=small)
        assert default.config._attn_implementation == "sdpa"
    classifier.save_pretrained(tmp_path / "classifier")
    assert "attn_implementation" not in (tmp_path / "classifier" / "config.json").read_text()
    with pytest.raises(ValueError, match="flash_attention_9"):
        load_encoder("tiny", config_overrides=small, attn_implementation="flash_attention_9")
