"""Converting the authors' checkpoints (`maskspec_hf.conversion`): official-format fixtures (tiny widths, random
values, see `test_convert_reference`) are converted, loaded back with the Auto classes (zero missing, zero unexpected
weights) and compared with the independent timm / MAE reference forward to 1e-5.
"""

import json

import numpy as np
import pytest
import torch
from test_convert_reference import (
    FIXTURES,
    OVERRIDES,
    official_image,
    reference_classifier,
    reference_decoder,
    reference_encoder,
    save_frame_statistics,
    save_official,
    to_our_patch_order,
    to_our_pixel_order,
)
from transformers import AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification, AutoModelForPreTraining

import maskspec_hf  # noqa: F401  (registers the Auto classes)
from maskspec_hf.conversion import convert_checkpoint


def _convert(fx, tmp_path, class_index):
    checkpoint, state = save_official(fx, tmp_path / "official")
    output = tmp_path / "converted"
    labels = class_index if fx.head else None
    statistics = save_frame_statistics(tmp_path / "official")[0] if fx.source == "maskspec" else None
    result = convert_checkpoint(
        fx.source, checkpoint, output, labels_csv=labels, config_overrides=OVERRIDES, normalization_file=statistics
    )
    return result, output, state


def _load(auto_class, folder):
    model, info = auto_class.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    return model.eval()


EXPECTED = {  # task, encoder positions, decoder positions
    "maskspec-finetuned": ("audio-classification", "learned", None),
    "maskspec-pretrained": ("pretraining", "sinusoidal", "sinusoidal"),  # MAE's sin-cos is exactly ours
    "msm-mae-80x208": ("pretraining", "sinusoidal", "learned"),  # the decoder's 1-D table is not
    "msm-mae-no-cls": ("pretraining", "sinusoidal", "learned"),
    "audiomae-finetuned": ("audio-classification", "learned", None),  # time x freq: halves swapped
    "audiomae-pretrained": ("encoder", "learned", None),  # Swin decoder: left out
}


@pytest.mark.parametrize("name", list(FIXTURES))
def test_converted_encoder_matches_the_official_forward(name, tmp_path, audioset_class_index):
    fx = FIXTURES[name]
    result, folder, state = _convert(fx, tmp_path, audioset_class_index)
    task, positions, decoder_positions = EXPECTED[name]
    assert result.task == task
    assert result.config.position_embedding_type == positions
    assert result.config.use_cls_token == fx.cls and result.config.max_frames == fx.frames
    if decoder_positions:
        assert result.config.decoder_position_embedding_type == decoder_positions

    encoder = _load(AutoModel, folder)
    input_values = torch.randn(2, fx.frames, fx.mel, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = encoder(input_values)
        tokens, _ = reference_encoder(fx, state, official_image(fx, input_values))
    c = int(fx.cls)
    torch.testing.assert_close(ours.last_hidden_state, to_our_patch_order(fx, tokens[:, c:]), rtol=0, atol=1e-5)
    if fx.cls:
        torch.testing.assert_close(ours.cls_hidden_state, tokens[:, 0], rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.pooler_output, tokens[:, c:].mean(dim=1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["maskspec-finetuned", "audiomae-finetuned"])
def test_converted_classifier_matches_the_official_logits(name, tmp_path, audioset_class_index):
    fx = FIXTURES[name]
    _, folder, state = _convert(fx, tmp_path, audioset_class_index)
    model = _load(AutoModelForAudioClassification, folder)
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.num_labels == 527 and model.config.id2label[0] == "Speech"
    input_values = torch.randn(3, fx.frames, fx.mel, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(input_values).logits
        expected = reference_classifier(fx, state, official_image(fx, input_values))
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)


# Not "msm-mae-no-cls": without a class token the official MSM-MAE decoder drops its first visible token
# (`x[:, 1:]` regardless), which MaskSpec-HF does not reproduce; the card says so (tested below).
@pytest.mark.parametrize("name", ["maskspec-pretrained", "msm-mae-80x208"])
def test_converted_decoder_matches_the_official_reconstruction(name, tmp_path):
    fx = FIXTURES[name]
    _, folder, state = _convert(fx, tmp_path, None)
    model = _load(AutoModelForPreTraining, folder)
    generator = torch.Generator().manual_seed(3)
    input_values = torch.randn(2, fx.frames, fx.mel, generator=generator)
    noise = torch.rand(2, fx.freq_patches * fx.time_patches, generator=generator)  # in our patch order
    # The same noise per patch in the official order: noise_official[f * T + t] = noise[t * F + f].
    official_noise = noise.reshape(2, fx.time_patches, fx.freq_patches).transpose(1, 2).reshape(2, -1)
    # MAE keeps int(n * (1 - ratio)) patches, MaskSpec-HF masks floor(n * ratio): for 65 patches at 0.75 that is 16
    # visible against 17. Give our model the ratio that keeps the official count.
    num_patches = noise.shape[1]
    num_visible = int(num_patches * (1 - 0.75))
    with torch.no_grad():
        ours = model(input_values, noise=noise, mask_ratio=(num_patches - num_visible + 0.5) / num_patches)
        latent, ids_restore = reference_encoder(fx, state, official_image(fx, input_values), official_noise)
        predictions = reference_decoder(fx, state, latent, ids_restore)
    expected = to_our_pixel_order(fx, to_our_patch_order(fx, predictions))
    torch.testing.assert_close(ours.logits, expected, rtol=0, atol=1e-5)


def test_feature_extractors_carry_each_sources_front_end(tmp_path, audioset_class_index):
    maskspec = _convert(FIXTURES["maskspec-finetuned"], tmp_path / "a", audioset_class_index)[1]
    extractor = AutoFeatureExtractor.from_pretrained(maskspec)
    assert extractor.sampling_rate == 32000 and len(extractor.mean) == len(extractor.std) == 128
    # MaskSpec's (x + 4.5) / 5 then per-bin (x - m) / s, folded into one step: mean = 5 m - 4.5, std = 5 s.
    _, statistics = save_frame_statistics(tmp_path / "a" / "official")  # the file _convert used (same seed)
    np.testing.assert_allclose(extractor.mean, 5 * statistics["frame_mean"] - 4.5, rtol=0, atol=1e-5)
    np.testing.assert_allclose(extractor.std, 5 * statistics["frame_std"], rtol=0, atol=1e-5)
    log_mel = np.random.default_rng(0).normal(-5, 3, size=(7, 128)).astype(np.float32)
    official = ((log_mel + 4.5) / 5 - statistics["frame_mean"]) / statistics["frame_std"]
    ours = (log_mel - np.array(extractor.mean)) / np.array(extractor.std)
    np.testing.assert_allclose(ours, official, rtol=0, atol=1e-5)

    msm = _convert(FIXTURES["msm-mae-80x208"], tmp_path / "b", None)[1]
    extractor = AutoFeatureExtractor.from_pretrained(msm)
    assert (extractor.sampling_rate, extractor.feature_size) == (16000, 80)
    assert (extractor.mean, extractor.std) == (-7.5, 4.5)  # the run's --norm_stats, stored in its args

    audiomae = _convert(FIXTURES["audiomae-finetuned"], tmp_path / "c", audioset_class_index)[1]
    extractor = AutoFeatureExtractor.from_pretrained(audiomae)
    assert (extractor.sampling_rate, extractor.std_multiplier, extractor.max_length_frames) == (16000, 2.0, 1024)


def test_model_cards_name_source_licence_and_reported_numbers(tmp_path, audioset_class_index):
    _, folder, _ = _convert(FIXTURES["maskspec-finetuned"], tmp_path / "a", audioset_class_index)
    card = (folder / "README.md").read_text()
    assert "https://github.com/WangHelin1997/MaskSpec" in card and "arXiv:2204.12768" in card
    assert "AudioSet_Pretrained_Finetuned.pth" in card and "0.471" in card and "apache-2.0" in card
    assert "mean_std_128.npy" in card  # the statistics file, named with its digest
    assert "320000" in card and "bicubic" in card  # the known difference for short clips
    assert str(tmp_path) not in card  # no local paths in a card meant for the Hub

    _, folder, _ = _convert(FIXTURES["msm-mae-80x208"], tmp_path / "b", None)
    card = (folder / "README.md").read_text()
    assert "EVALUATION" in card and "Do not publish this folder" in card and "license: other" in card
    assert "80x208p16x16_0422" in card and "87.1" in card and "89.1" not in card  # only this run's numbers

    result, folder, _ = _convert(FIXTURES["msm-mae-no-cls"], tmp_path / "d", None)
    assert "drops the first token" in (folder / "README.md").read_text() and "no_cls_token" in result.notes[-1]

    result, folder, _ = _convert(FIXTURES["audiomae-pretrained"], tmp_path / "c", None)
    card = (folder / "README.md").read_text()
    assert result.model_class == "MaskSpecModel" and "Encoder only" in card and "cc-by-nc-4.0" in card
    assert any("decoder_blocks.0.attn.tau" in key for key in result.left_out)


def test_converted_folders_map_every_auto_class(tmp_path, audioset_class_index):
    _, folder, _ = _convert(FIXTURES["audiomae-finetuned"], tmp_path, audioset_class_index)
    config = json.loads((folder / "config.json").read_text())
    assert set(config["auto_map"]) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForPreTraining",
        "AutoModelForAudioClassification",
        "AutoFeatureExtractor",
    }
    assert config["architectures"] == ["MaskSpecForAudioClassification"]
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "preprocessor_config.json"}
