"""Tests of the MaskSpec models: the method's steps one by one, then the models as transformers models."""

import math

import pytest
import torch

from maskspec_hf import (
    MaskSpecConfig,
    MaskSpecForAudioClassification,
    MaskSpecForPreTraining,
    MaskSpecModel,
)
from maskspec_hf.modeling_maskspec import (
    frames_to_patch_mask,
    patchify,
    random_masking,
    reconstruction_loss,
    sinusoidal_position_embedding,
    unpatchify,
)


def small_config(**kwargs) -> MaskSpecConfig:
    """A few-layer config so the tests run in seconds; shapes follow the same code paths as the presets."""
    defaults = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=64,
        num_mel_bins=32,
        patch_size=8,
        max_frames=64,
    )
    return MaskSpecConfig(**{**defaults, **kwargs})


def encoder_parameter_count(hidden: int, ffn: int, layers: int = 12, patch: int = 16) -> int:
    """Analytic count: patch projection + per block (qkv, proj, 2 LayerNorms, MLP) + final LayerNorm."""
    block = (
        (3 * hidden * hidden + 3 * hidden)
        + (hidden * hidden + hidden)
        + 4 * hidden
        + (2 * hidden * ffn + ffn + hidden)
    )
    return (patch * patch * hidden + hidden) + layers * block + 2 * hidden


# --- configuration ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset,hidden,heads,ffn,expected",
    [("tiny", 192, 3, 768, 5_388_096), ("small", 384, 6, 1536, 21_393_024), ("base", 768, 12, 3072, 85_253_376)],
)
def test_preset_encoder_parameter_counts(preset, hidden, heads, ffn, expected):
    config = MaskSpecConfig.from_preset(preset)
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (hidden, heads, ffn)
    assert (config.decoder_hidden_size, config.decoder_num_hidden_layers) == (512, 8)
    assert (config.decoder_num_attention_heads, config.decoder_intermediate_size) == (16, 2048)
    assert config.num_hidden_layers == 12 and config.patch_size == 16 and config.num_mel_bins == 128
    assert config.mask_ratio == 0.75 and not config.norm_pix_loss
    with torch.device("meta"):
        model = MaskSpecModel(config)
    count = sum(p.numel() for p in model.parameters())
    assert count == expected == encoder_parameter_count(hidden, ffn)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(mask_ratio=0.96), "mask_ratio"),
        (dict(mask_ratio=0.01), "mask_ratio"),
        (dict(hidden_size=200, num_attention_heads=3), "divisible by `num_attention_heads`"),
        (dict(decoder_hidden_size=500, decoder_num_attention_heads=16), "decoder_hidden_size"),
        (dict(patch_size=256), "patch_size"),
        (dict(num_hidden_layers=0), "num_hidden_layers"),
        (dict(hidden_size=-8), "hidden_size"),
        (dict(patchout_ratio=0.99), "patchout_ratio"),
    ],
)
def test_config_rejects_invalid_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaskSpecConfig(**kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="tiny"):
        MaskSpecConfig.from_preset("huge")


# --- the method's steps ----------------------------------------------------------------------------------------------


def test_patchify_crops_partial_patches_and_round_trips():
    spectrogram = torch.randn(2, 37, 20)  # 37 frames -> 4 whole patches of 8; 20 bins -> 2
    patches, grid = patchify(spectrogram, 8)
    assert grid == (4, 2) and patches.shape == (2, 8, 64)
    # Patch (t=1, f=1) holds frames 8..15 x bins 8..15, flattened frames-first.
    assert torch.equal(patches[:, 1 * 2 + 1], spectrogram[:, 8:16, 8:16].reshape(2, 64))
    assert torch.equal(unpatchify(patches, grid, 8), spectrogram[:, :32, :16])
    with pytest.raises(ValueError, match="smaller than one"):
        patchify(torch.randn(1, 7, 20), 8)


def test_sinusoidal_positions_are_fixed_and_distinct():
    table = sinusoidal_position_embedding((5, 3), 16)
    assert table.shape == (15, 16)
    assert torch.unique(table, dim=0).shape[0] == 15
    # The first rows of a longer grid equal a shorter grid's: positions do not depend on the input length.
    assert torch.equal(sinusoidal_position_embedding((9, 3), 16)[:15], table)


def test_random_masking_invariants():
    batch, n, ratio = 4, 50, 0.75
    ids_keep, mask, ids_restore = random_masking(batch, n, ratio)
    num_masked = math.floor(n * ratio)
    assert torch.all(mask.sum(dim=1) == num_masked)
    assert ids_keep.shape == (batch, n - num_masked)
    for row in range(batch):
        assert len(set(ids_keep[row].tolist())) == n - num_masked  # no repeats
        assert torch.all(mask[row, ids_keep[row]] == 0)  # kept patches are visible
        assert sorted(ids_restore[row].tolist()) == list(range(n))
    assert len({tuple(r) for r in mask.tolist()}) > 1  # differs across the batch
    noise = torch.rand(batch, n)
    first, second = random_masking(batch, n, ratio, noise), random_masking(batch, n, ratio, noise)
    assert all(torch.equal(a, b) for a, b in zip(first, second))  # deterministic with noise
    # The patches with the smallest noise stay visible.
    assert torch.equal(
        ids_keep.new_tensor(sorted(first[0][0].tolist())), torch.sort(noise[0].argsort()[: n - num_masked])[0]
    )


def test_frames_to_patch_mask_counts_whole_patches():
    attention_mask = torch.tensor([[1] * 40, [1] * 21 + [0] * 19])
    patch_mask = frames_to_patch_mask(attention_mask, (5, 2), 8)
    assert patch_mask.shape == (2, 10)
    assert patch_mask[0].all() and patch_mask[1].tolist() == [True] * 4 + [False] * 6


def test_reconstruction_loss_equals_hand_computation():
    torch.manual_seed(0)
    predictions, targets = torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 1, 1, 0, 0, 0]], dtype=torch.float32)
    expected = (
        sum(((predictions[b, i] - targets[b, i]) ** 2).mean() for b in range(2) for i in range(6) if mask[b, i])
        / mask.sum()
    )
    assert torch.allclose(reconstruction_loss(predictions, targets, mask, norm_pix_loss=False), expected)
    # Visible targets do not count.
    changed = targets.clone()
    changed[mask == 0] += 100.0
    assert torch.allclose(reconstruction_loss(predictions, changed, mask, norm_pix_loss=False), expected)
    # Per-patch normalized targets.
    normed = (targets - targets.mean(-1, keepdim=True)) / (targets.var(-1, keepdim=True) + 1e-6).sqrt()
    expected_norm = (
        sum(((predictions[b, i] - normed[b, i]) ** 2).mean() for b in range(2) for i in range(6) if mask[b, i])
        / mask.sum()
    )
    assert torch.allclose(reconstruction_loss(predictions, targets, mask, norm_pix_loss=True), expected_norm)


def test_pretraining_loss_uses_model_outputs_and_masked_patches_only():
    torch.manual_seed(0)
    model = MaskSpecForPreTraining(small_config(norm_pix_loss=False)).eval()
    inputs = torch.randn(2, 64, 32)
    noise = torch.rand(2, 32)
    out = model(inputs, noise=noise)
    assert out.logits.shape == (2, 32, 64) and out.mask.shape == (2, 32) and out.grid == (8, 4)
    assert torch.all(out.mask.sum(1) == 24)
    targets = model.patchify(inputs)
    expected = (((out.logits - targets) ** 2).mean(-1) * out.mask).sum() / out.mask.sum()
    assert torch.allclose(out.loss, expected)
    # Changing visible input changes the prediction but not the targets of the masked patches; changing only
    # masked input changes nothing the encoder sees, so the predictions stay the same.
    spectrogram_mask = model.unpatchify(out.mask[:, :, None].expand(-1, -1, 64), 64).bool()
    perturbed = torch.where(spectrogram_mask, inputs + 5.0, inputs)
    out2 = model(perturbed, noise=noise)
    assert torch.allclose(out2.logits, out.logits, atol=1e-6)
    assert not torch.allclose(out2.loss, out.loss)


def test_mask_ratio_override_and_validation():
    model = MaskSpecForPreTraining(small_config()).eval()
    inputs = torch.randn(1, 64, 32)
    assert model(inputs, mask_ratio=0.5).mask.sum() == 16
    for bad in (0.0, 0.99, 1.5):
        with pytest.raises(ValueError, match="mask_ratio"):
            model(inputs, mask_ratio=bad)


@pytest.mark.parametrize(
    "shape,match",
    [((2, 64), "shape"), ((2, 64, 31), "shape"), ((1, 4, 32), "fewer than one patch")],
)
def test_bad_input_shapes(shape, match):
    model = MaskSpecModel(small_config())
    with pytest.raises(ValueError, match=match):
        model(torch.randn(*shape))


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    config = small_config(
        norm_pix_loss=False,
        hidden_size=64,
        num_attention_heads=4,
        intermediate_size=128,
        decoder_hidden_size=64,
        decoder_num_attention_heads=4,
        decoder_num_hidden_layers=2,
        decoder_intermediate_size=128,
    )
    model = MaskSpecForPreTraining(config)
    # Random targets cannot be inferred from the visible patches: only memorizing the batch lowers the loss.
    inputs = torch.randn(2, 64, 32)
    noise = torch.rand(2, 32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    torch.set_flush_denormal(True)  # as the training scripts do: denormal Adam moments are very slow on x86
    for _ in range(150):
        loss = model(inputs, noise=noise).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


# --- padding and any length ------------------------------------------------------------------------------------------


def test_padding_does_not_change_outputs():
    torch.manual_seed(0)
    model = MaskSpecForAudioClassification(small_config(num_labels=3)).eval()
    inputs = torch.randn(2, 64, 32)
    attention_mask = torch.ones(2, 64, dtype=torch.long)
    attention_mask[1, 27:] = 0  # 27 real frames -> 3 whole patches
    batched = model(inputs, attention_mask=attention_mask).logits
    alone = model(inputs[1:, :27]).logits
    assert torch.allclose(batched[1], alone[0], atol=1e-5)
    embeddings = model.maskspec(inputs, attention_mask=attention_mask)
    assert embeddings.patch_attention_mask.sum(1).tolist() == [32, 12]


def test_long_input_is_windowed_and_short_input_fits_one_window():
    torch.manual_seed(0)
    model = MaskSpecForAudioClassification(small_config(num_labels=3)).eval()
    window = model.config.max_frames
    clip = torch.randn(1, window, 32)
    # Exactly one window: same as a direct encoder pass.
    direct = model.classifier(model.fc_norm(model.maskspec(clip).pooler_output))
    assert torch.allclose(model(clip).logits, direct, atol=1e-6)
    # Longer: the mean of the logits of the overlapping windows.
    long_clip = torch.randn(1, 2 * window + 16, 32)
    starts = [0, 32, 64, 80]  # hop = half a window, the last window flush with the end
    windows = torch.cat([long_clip[:, s : s + window] for s in starts])
    expected = model.classifier(model.fc_norm(model.maskspec(windows).pooler_output)).mean(0, keepdim=True)
    assert torch.allclose(model(long_clip).logits, expected, atol=1e-5)
    # A padded batch of a long and a short clip: the short one equals its own result.
    batch = torch.zeros(2, long_clip.shape[1], 32)
    batch[0], batch[1, :40] = long_clip[0], clip[0, :40]
    attention_mask = torch.zeros(2, long_clip.shape[1], dtype=torch.long)
    attention_mask[0], attention_mask[1, :40] = 1, 1
    logits = model(batch, attention_mask=attention_mask).logits
    assert torch.allclose(logits[0], model(long_clip).logits[0], atol=1e-5)
    assert torch.allclose(logits[1], model(clip[:, :40]).logits[0], atol=1e-5)


# --- transformers integration ----------------------------------------------------------------------------------------


def test_sdpa_matches_eager():
    torch.manual_seed(0)
    config = small_config()
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, 32)
    attention_mask = torch.ones(2, 64, dtype=torch.long)
    attention_mask[0, 40:] = 0
    sdpa = MaskSpecForPreTraining(config).eval()
    assert sdpa.config._attn_implementation == "sdpa"
    eager = MaskSpecForPreTraining(config).eval()
    eager.load_state_dict(sdpa.state_dict())
    eager.set_attn_implementation("eager")
    a = sdpa(inputs, attention_mask=attention_mask, noise=noise)
    b = eager(inputs, attention_mask=attention_mask, noise=noise)
    assert torch.allclose(a.logits, b.logits, atol=1e-5) and torch.allclose(a.loss, b.loss, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    config = small_config()
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, 32)
    plain = MaskSpecForPreTraining(config).train()
    checkpointed = MaskSpecForPreTraining(config).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in checkpointed.maskspec.layers)
    plain(inputs, noise=noise).loss.backward()
    checkpointed(inputs, noise=noise).loss.backward()
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name


def test_hidden_states_and_attentions_are_recorded():
    model = MaskSpecModel(small_config()).eval()
    model.set_attn_implementation("eager")
    out = model(torch.randn(1, 64, 32), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == (1, 2, 32, 32)
    assert model(torch.randn(1, 64, 32), return_dict=False)[0].shape == (1, 32, 32)


@pytest.mark.parametrize("model_class", [MaskSpecModel, MaskSpecForPreTraining, MaskSpecForAudioClassification])
def test_save_and_load_give_identical_outputs(tmp_path, model_class):
    from transformers import AutoModel, AutoModelForAudioClassification, AutoModelForPreTraining

    torch.manual_seed(0)
    model = model_class(small_config(num_labels=4)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    auto = {
        MaskSpecModel: AutoModel,
        MaskSpecForPreTraining: AutoModelForPreTraining,
        MaskSpecForAudioClassification: AutoModelForAudioClassification,
    }[model_class]
    loaded = auto.from_pretrained(tmp_path).eval()
    assert type(loaded) is model_class
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, 32)
    kwargs = {"noise": noise} if model_class is MaskSpecForPreTraining else {}
    first, second = model(inputs, **kwargs), loaded(inputs, **kwargs)
    key = "last_hidden_state" if model_class is MaskSpecModel else "logits"
    assert torch.equal(first[key], second[key])


def test_classifier_from_pretraining_checkpoint_drops_decoder_quietly(tmp_path, caplog):
    torch.manual_seed(0)
    pretrained = MaskSpecForPreTraining(small_config())
    pretrained.save_pretrained(tmp_path)
    clf, info = MaskSpecForAudioClassification.from_pretrained(tmp_path, num_labels=3, output_loading_info=True)
    assert not any(k.startswith("decoder") for k in clf.state_dict())
    assert set(info["missing_keys"]) == {"fc_norm.weight", "fc_norm.bias", "classifier.weight", "classifier.bias"}
    for name, param in pretrained.maskspec.state_dict().items():
        assert torch.equal(param, clf.maskspec.state_dict()[name]), name
    clf.freeze_feature_encoder()
    assert not any(p.requires_grad for p in clf.maskspec.patch_embeddings.parameters())


def test_classification_losses_follow_problem_type():
    torch.manual_seed(0)
    inputs = torch.randn(3, 64, 32)
    single = MaskSpecForAudioClassification(small_config(num_labels=4))
    out = single(inputs, labels=torch.tensor([0, 3, 1]))
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 3, 1])))
    multi = MaskSpecForAudioClassification(small_config(num_labels=4, problem_type="multi_label_classification"))
    targets = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0]], dtype=torch.float32)
    out = multi(inputs, labels=targets)
    assert torch.allclose(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, targets))


def test_patchout_only_in_training():
    model = MaskSpecForAudioClassification(small_config(num_labels=2, patchout_ratio=0.5))
    inputs = torch.randn(1, 64, 32)
    model.eval()
    assert torch.equal(model(inputs).logits, model(inputs).logits)
    model.train()
    torch.manual_seed(1)
    a = model(inputs).logits
    torch.manual_seed(2)
    assert not torch.allclose(a, model(inputs).logits)


def test_reconstruct_spectrogram_fills_masked_patches():
    torch.manual_seed(0)
    model = MaskSpecForPreTraining(small_config()).eval()
    inputs = torch.randn(1, 70, 32)  # 70 frames: the figures cover the 64 frames of whole patches
    out = model(inputs)
    original, masked_input, reconstruction = model.reconstruct_spectrogram(inputs, out.logits, out.mask)
    assert original.shape == masked_input.shape == reconstruction.shape == (1, 64, 32)
    assert torch.equal(original, inputs[:, :64])
    visible = ~torch.isnan(masked_input)
    assert torch.equal(reconstruction[visible], original[visible])
    assert visible.float().mean().item() == pytest.approx(0.25, abs=1e-6)
