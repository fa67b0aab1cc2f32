"""The ViT options that official checkpoints need: class token, pooling, final / fc LayerNorms, learned positions.

Each option is checked against an independent reference written here: plain timm / MAE-style ViT math (patch
vectors cut with explicit loops, attention and MLP from the weights), and MAE's 2-D sinusoid layout for a
freq x time image written from its description in numpy.
"""

import json

import numpy as np
import pytest
import torch
from test_modeling import small_config

from maskspec_hf import MaskSpecConfig, MaskSpecForAudioClassification, MaskSpecForPreTraining, MaskSpecModel
from maskspec_hf.modeling_maskspec import sinusoidal_position_embedding, sinusoidal_table_with_prefix


# small_config: hidden 32, 2 blocks of 2 heads, 32 mel bins, patches of 8, max_frames 64 -> a grid of 8 x 4 patches.
GRID = (8, 4)
NUM_PATCHES = GRID[0] * GRID[1]
HIDDEN, DECODER_HIDDEN, PATCH = 32, 32, 8
NEW_FIELDS = (
    "use_cls_token",
    "pooling",
    "use_final_layernorm",
    "use_fc_norm",
    "position_embedding_type",
    "decoder_position_embedding_type",
)
# The option sets the official checkpoints use, and the remaining combinations worth running.
OPTION_SETS = {
    "cls_token": dict(use_cls_token=True),
    "mae_global_pool": dict(use_cls_token=True, use_final_layernorm=False, position_embedding_type="learned"),
    "cls_pooling": dict(use_cls_token=True, pooling="cls", use_fc_norm=False, position_embedding_type="learned"),
    "learned_positions": dict(position_embedding_type="learned", decoder_position_embedding_type="learned"),
    "mae_pretraining": dict(
        use_cls_token=True, position_embedding_type="learned", decoder_position_embedding_type="learned"
    ),
}


def options_config(name: str | None = None, **kwargs) -> MaskSpecConfig:
    return small_config(**{**(OPTION_SETS[name] if name else {}), "num_labels": 3, **kwargs})


# --- independent references ------------------------------------------------------------------------------------------


def mae_sincos_layout(dim: int, height: int, width: int, cls_token: bool) -> torch.Tensor:
    """MAE's 2-D sin-cos table for a height x width grid, rows row-major (row * width + column), written from its
    description: the first half of the channels encodes the column index, the second half the row index, each as
    [sin(pos * omega_k), cos(pos * omega_k)] with omega_k = 10000^(-k / (dim / 4)); a zero row first for the class
    token."""

    def one_axis(channels, positions):
        omega = 1.0 / 10000 ** (np.arange(channels // 2, dtype=np.float64) / (channels / 2))
        angles = np.outer(positions.astype(np.float64), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    table = np.concatenate([one_axis(dim // 2, columns.reshape(-1)), one_axis(dim // 2, rows.reshape(-1))], axis=1)
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table])
    return torch.from_numpy(table).float()


def mae_rows_in_our_order(num_time: int, num_freq: int, cls_token: bool) -> list[int]:
    """Rows of a freq x time (H = freq, W = time) table for our time-major patches (t * num_freq + f)."""
    offset = int(cls_token)
    return [offset + f * num_time + t for t in range(num_time) for f in range(num_freq)]


def reference_patches(spectrogram: torch.Tensor, patch: int = PATCH) -> torch.Tensor:
    """`[batch, frames, mel]` -> `[batch, n, p*p]`, each patch cut out by hand and flattened frames-first."""
    num_time, num_freq = spectrogram.shape[1] // patch, spectrogram.shape[2] // patch
    cut = [
        spectrogram[:, t * patch : (t + 1) * patch, f * patch : (f + 1) * patch].reshape(spectrogram.shape[0], -1)
        for t in range(num_time)
        for f in range(num_freq)
    ]
    return torch.stack(cut, dim=1)


def layer_norm(x, module, eps=1e-6):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), module.weight, module.bias, eps)


def reference_block(x: torch.Tensor, layer, num_heads: int, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """timm's pre-norm ViT block: x + attn(norm1(x)), then x + mlp(norm2(x)); `key_mask` [batch, seq] bool."""
    batch, seq, dim = x.shape
    head_dim = dim // num_heads
    qkv = layer_norm(x, layer.layernorm_before) @ layer.attention.qkv.weight.T + layer.attention.qkv.bias
    q, k, v = qkv.reshape(batch, seq, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) * head_dim**-0.5
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, dim)
    x = x + attended @ layer.attention.proj.weight.T + layer.attention.proj.bias
    hidden = torch.nn.functional.gelu(
        layer_norm(x, layer.layernorm_after) @ layer.mlp.fc1.weight.T + layer.mlp.fc1.bias
    )
    return x + hidden @ layer.mlp.fc2.weight.T + layer.mlp.fc2.bias


def reference_real_patches(frame_mask: torch.Tensor, num_time: int) -> torch.Tensor:
    """`[batch, n]` bool: a patch is real when all its frames are."""
    real_rows = frame_mask[:, : num_time * PATCH].reshape(-1, num_time, PATCH).bool().all(-1)
    return real_rows.repeat_interleave(GRID[1], dim=1)


def reference_positions(table: torch.Tensor | None, num_time: int, num_freq: int, cls_token: bool, dim: int):
    """(class-token position [dim], patch positions [num_time * num_freq, dim]) as the original model adds them."""
    if table is None:  # fixed sinusoids: MAE's table, class-token row zero
        full = mae_sincos_layout(dim, num_freq, num_time, cls_token)
        return full[0] if cls_token else None, full[mae_rows_in_our_order(num_time, num_freq, cls_token)]
    offset = int(cls_token)
    patch_rows = table[0, offset:].reshape(-1, num_freq, dim)[:num_time].reshape(-1, dim)  # first time columns
    return table[0, 0] if cls_token else None, patch_rows


def reference_encoder_tokens(encoder: MaskSpecModel, spectrogram, frame_mask=None) -> torch.Tensor:
    """The block outputs `[batch, c + n, dim]` of a timm ViT with the encoder's weights (no masking), no final norm."""
    config = encoder.config
    patches = reference_patches(spectrogram)
    num_time = spectrogram.shape[1] // PATCH
    x = patches @ encoder.patch_embeddings.projection.weight.T + encoder.patch_embeddings.projection.bias
    table = getattr(encoder, "position_embeddings", None)
    cls_position, positions = reference_positions(table, num_time, GRID[1], config.use_cls_token, config.hidden_size)
    x = x + positions
    key_mask = None if frame_mask is None else reference_real_patches(frame_mask, num_time)
    if config.use_cls_token:
        x = torch.cat([(encoder.cls_token[0, 0] + cls_position).expand(x.shape[0], 1, -1), x], dim=1)
        if key_mask is not None:
            key_mask = torch.cat([torch.ones_like(key_mask[:, :1]), key_mask], dim=1)
    for layer in encoder.layers:
        x = reference_block(x, layer, config.num_attention_heads, key_mask)
    return x


def reference_logits(model: MaskSpecForAudioClassification, spectrogram, frame_mask=None) -> torch.Tensor:
    """The official fine-tuning heads: mean over the (real) patch tokens [+ final norm] + fc_norm, or cls + norm."""
    config = model.config
    tokens = reference_encoder_tokens(model.maskspec, spectrogram, frame_mask)
    if config.use_final_layernorm:
        tokens = layer_norm(tokens, model.maskspec.layernorm)
    offset = int(config.use_cls_token)
    if config.pooling == "cls":
        pooled = tokens[:, 0]
    else:
        weights = torch.ones(tokens.shape[0], tokens.shape[1] - offset)
        if frame_mask is not None:
            weights = reference_real_patches(frame_mask, spectrogram.shape[1] // PATCH).float()
        pooled = (tokens[:, offset:] * weights[:, :, None]).sum(1) / weights.sum(1, keepdim=True)
    if config.use_fc_norm:
        pooled = layer_norm(pooled, model.fc_norm)
    return pooled @ model.classifier.weight.T + model.classifier.bias


# Weight names before this issue, for the default config (any checkpoint saved so far has exactly these).
def weight_names_before_options(model_class, num_layers: int = 2, decoder_layers: int = 1) -> set[str]:
    modules = ("layernorm_before", "attention.qkv", "attention.proj", "layernorm_after", "mlp.fc1", "mlp.fc2")
    block = [f"{module}.{kind}" for module in modules for kind in ("weight", "bias")]
    prefix = "" if model_class is MaskSpecModel else "maskspec."
    names = {f"{prefix}patch_embeddings.projection.{p}" for p in ("weight", "bias")}
    names |= {f"{prefix}layers.{i}.{name}" for i in range(num_layers) for name in block}
    names |= {f"{prefix}layernorm.weight", f"{prefix}layernorm.bias"}
    if model_class is MaskSpecForPreTraining:
        names |= {"decoder.mask_token", "decoder.decoder_embed.weight", "decoder.decoder_embed.bias"}
        names |= {f"decoder.layers.{i}.{name}" for i in range(decoder_layers) for name in block}
        names |= {"decoder.norm.weight", "decoder.norm.bias", "decoder.pred.weight", "decoder.pred.bias"}
    if model_class is MaskSpecForAudioClassification:
        names |= {"fc_norm.weight", "fc_norm.bias", "classifier.weight", "classifier.bias"}
    return names


def expected_weights(model_class, config: MaskSpecConfig) -> dict[str, tuple]:
    """The option weights (name -> shape) that `config` adds, and the names it removes (shape `None`)."""
    prefix = "" if model_class is MaskSpecModel else "maskspec."
    rows = int(config.use_cls_token) + NUM_PATCHES
    changes = {}
    if config.use_cls_token:
        changes[f"{prefix}cls_token"] = (1, 1, HIDDEN)
    if config.position_embedding_type == "learned":
        changes[f"{prefix}position_embeddings"] = (1, rows, HIDDEN)
    if config.decoder_position_embedding_type == "learned" and model_class is MaskSpecForPreTraining:
        changes["decoder.position_embeddings"] = (1, rows, DECODER_HIDDEN)
    if not config.use_final_layernorm:
        changes.update({f"{prefix}layernorm.weight": None, f"{prefix}layernorm.bias": None})
    if not config.use_fc_norm and model_class is MaskSpecForAudioClassification:
        changes.update({"fc_norm.weight": None, "fc_norm.bias": None})
    return changes


MODEL_CLASSES = [MaskSpecModel, MaskSpecForPreTraining, MaskSpecForAudioClassification]


# --- configuration and weights ---------------------------------------------------------------------------------------


def test_defaults_are_todays_model():
    config = MaskSpecConfig()
    assert not config.use_cls_token and config.pooling == "mean" and config.use_final_layernorm and config.use_fc_norm
    assert config.position_embedding_type == config.decoder_position_embedding_type == "sinusoidal"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(pooling="max"), "pooling"),
        (dict(pooling="cls"), "use_cls_token"),
        (dict(position_embedding_type="rotary"), "position_embedding_type"),
        (dict(decoder_position_embedding_type="1d"), "decoder_position_embedding_type"),
    ],
)
def test_config_rejects_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaskSpecConfig(**kwargs)


@pytest.mark.parametrize("model_class", MODEL_CLASSES)
def test_default_weights_are_unchanged_also_from_a_config_without_the_new_fields(tmp_path, model_class):
    torch.manual_seed(0)
    model = model_class(options_config())
    assert set(model.state_dict()) == weight_names_before_options(model_class)
    # A folder saved before the options existed: its config.json lacks the new fields.
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config_dict = json.loads(config_file.read_text())
    assert all(config_dict.pop(name) is not None for name in NEW_FIELDS)
    config_file.write_text(json.dumps(config_dict))
    loaded, info = model_class.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set() or not info["missing_keys"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    assert set(loaded.state_dict()) == weight_names_before_options(model_class)
    assert all(getattr(loaded.config, name) == getattr(MaskSpecConfig(), name) for name in NEW_FIELDS)


@pytest.mark.parametrize("model_class", MODEL_CLASSES)
@pytest.mark.parametrize("option_set", sorted(OPTION_SETS))
def test_option_weights_and_lossless_save_load(tmp_path, model_class, option_set):
    torch.manual_seed(0)
    config = options_config(option_set)
    model = model_class(config).eval()
    state = model.state_dict()
    changes = expected_weights(model_class, config)
    added = {name: shape for name, shape in changes.items() if shape is not None}
    removed = {name for name, shape in changes.items() if shape is None}
    assert set(state) == (weight_names_before_options(model_class) - removed) | set(added)
    assert {name: tuple(state[name].shape) for name in added} == added

    model.save_pretrained(tmp_path)
    loaded, info = model_class.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    loaded.eval()
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    kwargs = {"noise": noise} if model_class is MaskSpecForPreTraining else {}
    key = "last_hidden_state" if model_class is MaskSpecModel else "logits"
    assert torch.equal(model(inputs, **kwargs)[key], loaded(inputs, **kwargs)[key])


def test_learned_tables_start_from_the_sinusoids_with_a_zero_class_row():
    model = MaskSpecForPreTraining(options_config("mae_pretraining"))
    reference = mae_sincos_layout(HIDDEN, GRID[1], GRID[0], cls_token=True)
    order = [0, *mae_rows_in_our_order(GRID[0], GRID[1], cls_token=True)]
    torch.testing.assert_close(model.maskspec.position_embeddings[0].detach(), reference[order], rtol=0, atol=1e-6)
    torch.testing.assert_close(model.decoder.position_embeddings[0].detach(), reference[order], rtol=0, atol=1e-6)
    assert model.maskspec.position_embeddings.requires_grad and model.maskspec.cls_token.requires_grad


# --- positions -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_time,num_freq,dim", [(62, 8, 768), (13, 5, 768), (62, 8, 512), (8, 4, 32)])
def test_sinusoids_equal_mae_layout_for_a_freq_by_time_grid(num_time, num_freq, dim):
    """MaskSpec (128 x 992/1000), MSM-MAE (80 x 208) and decoder widths: ours == MAE's table, rows permuted."""
    reference = mae_sincos_layout(dim, num_freq, num_time, cls_token=True)
    ours = sinusoidal_position_embedding((num_time, num_freq), dim)
    torch.testing.assert_close(ours, reference[mae_rows_in_our_order(num_time, num_freq, True)], rtol=0, atol=1e-6)
    with_class_row = sinusoidal_table_with_prefix((num_time, num_freq), dim, num_prefix_tokens=1)[0]
    assert torch.equal(with_class_row[0], torch.zeros(dim))
    torch.testing.assert_close(with_class_row[1:], ours, rtol=0, atol=0)


def test_learned_table_shorter_input_uses_the_first_time_columns():
    torch.manual_seed(0)
    model = MaskSpecModel(options_config("mae_global_pool")).eval()
    with torch.no_grad():
        model.position_embeddings.normal_()  # no longer the sinusoids: only the right rows give the right output
    for num_frames in (40, 47, 64, 70):  # 5, 5, 8 and 8 time patches (trailing partial patches cropped)
        spectrogram = torch.randn(2, num_frames, 32)
        out = model(spectrogram)
        tokens = reference_encoder_tokens(model, spectrogram)
        torch.testing.assert_close(out.last_hidden_state, tokens[:, 1:], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.cls_hidden_state, tokens[:, 0], rtol=1e-5, atol=1e-5)


def test_learned_table_longer_input_is_an_error_that_names_max_frames_but_classifier_windows_it():
    torch.manual_seed(0)
    config = options_config("mae_global_pool")
    with pytest.raises(ValueError, match="max_frames"):
        MaskSpecModel(config)(torch.randn(1, 72, 32))  # 9 time patches, the table has 8
    with pytest.raises(ValueError, match="max_frames"):
        MaskSpecForPreTraining(config)(torch.randn(1, 72, 32))
    classifier = MaskSpecForAudioClassification(config).eval()
    long_clip = torch.randn(1, 200, 32)
    logits = classifier(long_clip).logits
    windows = [classifier(long_clip[:, start : start + 64]).logits for start in (0, 32, 64, 96, 128, 136)]
    torch.testing.assert_close(logits, torch.stack(windows).mean(0), rtol=1e-5, atol=1e-6)


# --- class token -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "learned"])
def test_class_token_is_never_masked_and_takes_part_in_attention(position_embedding_type):
    torch.manual_seed(0)
    model = MaskSpecModel(options_config("cls_token", position_embedding_type=position_embedding_type)).eval()
    model.set_attn_implementation("eager")
    with torch.no_grad():
        model.cls_token.normal_()
    inputs, noise = torch.randn(3, 64, 32), torch.rand(3, NUM_PATCHES)
    out = model(inputs, noise=noise, mask_ratio=0.75, output_hidden_states=True, output_attentions=True)
    num_visible = NUM_PATCHES - 24
    assert out.last_hidden_state.shape == (3, num_visible, HIDDEN) and out.cls_hidden_state.shape == (3, HIDDEN)
    assert out.mask.shape == (3, NUM_PATCHES) and torch.all(out.mask.sum(1) == 24)  # patches only are masked
    # The encoder's first input: the class token (+ its position: zero for sinusoids, row 0 if learned) first,
    # then the visible patches in MAE's order (embedding + position, then masking).
    table = getattr(model, "position_embeddings", None)
    class_position = torch.zeros(HIDDEN) if table is None else table[0, 0]
    first_input = out.hidden_states[0]
    assert first_input.shape == (3, 1 + num_visible, HIDDEN)
    torch.testing.assert_close(first_input[:, 0], (model.cls_token[0, 0] + class_position).expand(3, -1))
    _, positions = reference_positions(table, GRID[0], GRID[1], True, HIDDEN)
    embedded = reference_patches(inputs) @ model.patch_embeddings.projection.weight.T
    embedded = embedded + model.patch_embeddings.projection.bias + positions
    visible = noise.argsort(dim=1)[:, :num_visible]
    torch.testing.assert_close(first_input[:, 1:], embedded.gather(1, visible[:, :, None].expand(-1, -1, HIDDEN)))
    # Every token attends to the class token, which attends to the patches.
    assert out.attentions[0].shape == (3, 2, 1 + num_visible, 1 + num_visible)
    assert torch.all(out.attentions[0][..., 0] > 0)
    # ... so changing it changes every patch output (not by a constant: LayerNorm would remove that).
    with torch.no_grad():
        model.cls_token.add_(torch.randn_like(model.cls_token))
    changed = model(inputs, noise=noise, mask_ratio=0.75).last_hidden_state
    assert (changed - out.last_hidden_state).abs().amax(dim=-1).min() > 1e-4


def test_class_token_survives_classifier_patchout():
    torch.manual_seed(0)
    model = MaskSpecForAudioClassification(options_config("cls_pooling", patchout_ratio=0.5)).train()
    out = model.maskspec(torch.randn(2, 64, 32), mask_ratio=0.5, output_hidden_states=True)
    assert out.hidden_states[0].shape[1] == 1 + NUM_PATCHES // 2 and out.cls_hidden_state is not None
    assert model(torch.randn(2, 64, 32)).logits.shape == (2, 3)


# --- pooling ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option_set", [None, "cls_token", "mae_global_pool", "cls_pooling", "learned_positions"])
def test_classifier_logits_equal_a_reference_vit(option_set):
    torch.manual_seed(0)
    model = MaskSpecForAudioClassification(options_config(option_set)).eval()
    for parameter in model.parameters():  # LayerNorms and biases away from their init, so each one matters
        with torch.no_grad():
            parameter.add_(0.1 * torch.randn_like(parameter))
    spectrogram = torch.randn(3, 64, 32)
    torch.testing.assert_close(model(spectrogram).logits, reference_logits(model, spectrogram), rtol=1e-5, atol=1e-5)
    # With padding: masked patches are left out of attention and of the mean.
    frame_mask = torch.ones(3, 64, dtype=torch.long)
    frame_mask[1, 43:] = 0  # 5 whole time patches
    frame_mask[2, 20:] = 0  # 2
    logits = model(spectrogram, attention_mask=frame_mask).logits
    torch.testing.assert_close(logits, reference_logits(model, spectrogram, frame_mask), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits[2], model(spectrogram[2:, :20]).logits[0], rtol=1e-5, atol=1e-5)


def test_pooler_output_follows_pooling():
    torch.manual_seed(0)
    spectrogram = torch.randn(2, 64, 32)
    mean_model = MaskSpecModel(options_config("mae_global_pool")).eval()
    out = mean_model(spectrogram)
    tokens = reference_encoder_tokens(mean_model, spectrogram)
    torch.testing.assert_close(out.pooler_output, tokens[:, 1:].mean(1), rtol=1e-5, atol=1e-5)  # no final norm
    cls_model = MaskSpecModel(options_config("cls_pooling")).eval()
    out = cls_model(spectrogram)
    tokens = layer_norm(reference_encoder_tokens(cls_model, spectrogram), cls_model.layernorm)
    torch.testing.assert_close(out.pooler_output, tokens[:, 0], rtol=1e-5, atol=1e-5)
    assert torch.equal(out.pooler_output, out.cls_hidden_state)
    torch.testing.assert_close(out.last_hidden_state, tokens[:, 1:], rtol=1e-5, atol=1e-5)


# --- decoder ---------------------------------------------------------------------------------------------------------


def reference_mae_decoder(model: MaskSpecForPreTraining, spectrogram, noise) -> tuple[torch.Tensor, torch.Tensor]:
    """MAE's forward_decoder and loss with the model's weights: (predictions [batch, n, p*p], loss)."""
    config, decoder = model.config, model.decoder
    encoded = model.maskspec(spectrogram, noise=noise)
    latent = torch.cat([encoded.cls_hidden_state[:, None], encoded.last_hidden_state], dim=1)
    x = latent @ decoder.decoder_embed.weight.T + decoder.decoder_embed.bias
    num_visible = latent.shape[1] - 1
    visible = noise.argsort(dim=1)[:, :num_visible]  # the patches with the smallest noise, in that order
    patches = decoder.mask_token.expand(x.shape[0], NUM_PATCHES, -1).clone()
    for b in range(x.shape[0]):
        patches[b, visible[b]] = x[b, 1:]
    table = getattr(decoder, "position_embeddings", None)
    cls_position, positions = reference_positions(table, GRID[0], GRID[1], True, config.decoder_hidden_size)
    sequence = torch.cat([x[:, :1] + cls_position, patches + positions], dim=1)
    for layer in decoder.layers:
        sequence = reference_block(sequence, layer, config.decoder_num_attention_heads)
    predictions = (layer_norm(sequence, decoder.norm) @ decoder.pred.weight.T + decoder.pred.bias)[:, 1:]
    masked = torch.ones(x.shape[0], NUM_PATCHES, dtype=torch.bool)
    for b in range(x.shape[0]):
        masked[b, visible[b]] = False
    errors = ((predictions - reference_patches(spectrogram)) ** 2).mean(-1)
    return predictions, errors[masked].mean()


@pytest.mark.parametrize("decoder_positions", ["sinusoidal", "learned"])
def test_decoder_with_class_token_equals_mae_decoder_and_loss(decoder_positions):
    torch.manual_seed(0)
    config = options_config("mae_pretraining", decoder_position_embedding_type=decoder_positions)
    model = MaskSpecForPreTraining(config).eval()
    for parameter in model.parameters():
        with torch.no_grad():
            parameter.add_(0.1 * torch.randn_like(parameter))
    spectrogram, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    out = model(spectrogram, noise=noise)
    predictions, loss = reference_mae_decoder(model, spectrogram, noise)
    assert out.logits.shape == (2, NUM_PATCHES, PATCH * PATCH)
    torch.testing.assert_close(out.logits, predictions, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, loss, rtol=1e-5, atol=1e-6)
    # The figures use the patches only.
    original, _, reconstruction = model.reconstruct_spectrogram(spectrogram, out.logits, out.mask)
    assert original.shape == reconstruction.shape == (2, 64, 32)


@pytest.mark.parametrize("decoder_type,ratio", [("self_attention", 0.5), ("cross_attention", 1.0)])
def test_subset_and_cross_attention_decoders_carry_the_class_token(decoder_type, ratio):
    torch.manual_seed(0)
    config = options_config("mae_pretraining", decoder_type=decoder_type, decoder_reconstruct_ratio=ratio)
    model = MaskSpecForPreTraining(config).train()
    spectrogram, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    frame_mask = torch.ones(2, 64, dtype=torch.long)
    frame_mask[1, 40:] = 0
    out = model(spectrogram, attention_mask=frame_mask, noise=noise)
    weights = out.reconstruction_mask * reference_real_patches(frame_mask, GRID[0])
    errors = ((out.logits - reference_patches(spectrogram)) ** 2).mean(-1)
    torch.testing.assert_close(out.loss, (errors * weights).sum() / weights.sum())
    # The class token is part of the decoder's context: changing its encoder output changes the predictions.
    with torch.no_grad():
        model.maskspec.cls_token.add_(torch.randn_like(model.maskspec.cls_token))
    changed = model(spectrogram, attention_mask=frame_mask, noise=noise)
    assert not torch.allclose(changed.logits, out.logits)


# --- training --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option_set", sorted(OPTION_SETS))
def test_tiny_model_with_options_trains(option_set):
    torch.manual_seed(0)
    torch.set_flush_denormal(True)
    pretraining = MaskSpecForPreTraining(options_config(option_set, num_hidden_layers=1))
    classifier = MaskSpecForAudioClassification(
        options_config(option_set, num_hidden_layers=1, problem_type="multi_label_classification")
    )
    spectrogram, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    for model, batch in ((pretraining, dict(noise=noise)), (classifier, dict(labels=labels))):
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        losses = []
        for _ in range(25):
            loss = model(spectrogram, **batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.7 * losses[0], (type(model).__name__, losses[0], losses[-1])
        for name, parameter in model.named_parameters():
            if "cls_token" in name or "position_embeddings" in name:
                assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.slow
def test_torch_export_with_options_and_dynamic_frames():
    torch.manual_seed(0)
    model = MaskSpecForAudioClassification(options_config("mae_global_pool", num_hidden_layers=1)).eval()
    frames = torch.export.Dim("frames", min=16, max=64)
    batch = torch.export.Dim("batch", min=1, max=8)
    example = {"input_values": torch.randn(2, 45, 32), "attention_mask": torch.ones(2, 45, dtype=torch.long)}
    shapes = {"input_values": {0: batch, 1: frames}, "attention_mask": {0: batch, 1: frames}}
    exported = torch.export.export(model, args=(), kwargs=example, dynamic_shapes=shapes)
    for num_frames in (16, 37, 64):
        values, mask = torch.randn(3, num_frames, 32), torch.ones(3, num_frames, dtype=torch.long)
        mask[-1, num_frames // 2 :] = 0
        with torch.no_grad():
            expected = model(values, attention_mask=mask).logits
            actual = exported.module()(input_values=values, attention_mask=mask).logits
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
