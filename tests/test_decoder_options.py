"""The pre-training options: `decoder_type`, `decoder_reconstruct_ratio` and `mask_strategy` (with `mask_block_size`)."""

import json
import math

import pytest
import torch
from test_modeling import small_config as modeling_small_config

from maskspec_hf import MaskSpecConfig, MaskSpecForPreTraining
from maskspec_hf.modeling_maskspec import num_reconstructed, random_masking, structured_masking


DECODERS = [
    ("self_attention", 1.0),
    ("self_attention", 0.25),
    ("cross_attention", 1.0),
    ("cross_attention", 0.25),
]
STRATEGIES = ["random", "inverse_block", "time", "frequency"]
GRID = (8, 4)  # 64 frames x 32 mel bins in patches of 8
NUM_PATCHES = GRID[0] * GRID[1]


def small_config(**kwargs) -> MaskSpecConfig:
    # test_modeling's few-layer config, with a 2-block decoder and blocks that fit the 8 x 4 grid.
    return modeling_small_config(**{"decoder_num_hidden_layers": 2, "mask_block_size": 2, **kwargs})


def hand_loss(logits, targets, weights):
    """MSE per patch, averaged over the patches with weight 1."""
    per_patch = ((logits - targets) ** 2).mean(-1)
    return (per_patch * weights).sum() / weights.sum()


# --- configuration ---------------------------------------------------------------------------------------------------


def test_defaults_are_the_paper():
    config = MaskSpecConfig()
    assert config.decoder_type == "self_attention" and config.decoder_reconstruct_ratio == 1.0
    assert config.mask_strategy == "random" and config.mask_block_size == 5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(decoder_type="linear"), "decoder_type"),
        (dict(decoder_reconstruct_ratio=0.0), "decoder_reconstruct_ratio"),
        (dict(decoder_reconstruct_ratio=1.5), "decoder_reconstruct_ratio"),
        (dict(decoder_reconstruct_ratio=-0.2), "decoder_reconstruct_ratio"),
        (dict(mask_strategy="checkerboard"), "mask_strategy"),
        (dict(mask_block_size=0), "mask_block_size"),
    ],
)
def test_config_rejects_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaskSpecConfig(**kwargs)


def test_weight_names_depend_only_on_the_decoder_type():
    paper = set(MaskSpecForPreTraining(small_config()).state_dict())
    # The ratio and the masking add no weights: the paper's names, unchanged.
    assert paper == set(
        MaskSpecForPreTraining(small_config(decoder_reconstruct_ratio=0.5, mask_strategy="time")).state_dict()
    )
    assert "decoder.layers.0.attention.qkv.weight" in paper and not any("cross" in k for k in paper)
    cross = set(MaskSpecForPreTraining(small_config(decoder_type="cross_attention")).state_dict())
    assert "decoder.cross_layers.0.cross_attention.key_value.weight" in cross
    assert not any(k.startswith("decoder.layers.") for k in cross)
    # Encoder and the shared decoder pieces (projection, mask token, final norm, head) keep their names.
    assert {k for k in paper if not k.startswith("decoder.layers.")} < cross


# --- masking strategies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("grid,ratio", [((8, 4), 0.75), ((7, 5), 0.6), ((62, 8), 0.75), ((10, 4), 0.05)])
def test_masking_counts_and_determinism(strategy, grid, ratio):
    batch, n = 3, grid[0] * grid[1]
    noise = torch.rand(batch, n)
    ids_keep, mask, ids_restore = structured_masking(grid, ratio, strategy, noise=noise, block_size=3)
    num_masked = math.floor(n * ratio)
    assert mask.shape == (batch, n) and torch.all(mask.sum(1) == num_masked)
    assert ids_keep.shape == (batch, n - num_masked)
    for row in range(batch):
        assert torch.all(mask[row, ids_keep[row]] == 0) and len(set(ids_keep[row].tolist())) == n - num_masked
        assert sorted(ids_restore[row].tolist()) == list(range(n))
        # ids_restore puts [visible, masked] back in patch order; the masked ones follow their noise.
        order = torch.argsort(ids_restore[row])
        assert torch.equal(order[: n - num_masked], ids_keep[row])
        masked_noise = noise[row, order[n - num_masked :]]
        assert torch.all(masked_noise[1:] >= masked_noise[:-1])
    again = structured_masking(grid, ratio, strategy, noise=noise.clone(), block_size=3)
    assert all(torch.equal(a, b) for a, b in zip((ids_keep, mask, ids_restore), again))
    other = structured_masking(grid, ratio, strategy, noise=torch.rand(batch, n), block_size=3)
    assert not torch.equal(other[1], mask)
    # Without noise: from the global generator, reproducible under a seed.
    torch.manual_seed(3)
    first = structured_masking(grid, ratio, strategy, batch_size=batch, block_size=3)[1]
    torch.manual_seed(3)
    assert torch.equal(structured_masking(grid, ratio, strategy, batch_size=batch, block_size=3)[1], first)


def test_random_strategy_is_random_masking():
    noise = torch.rand(2, 32)
    expected = random_masking(2, 32, 0.75, noise)
    assert all(torch.equal(a, b) for a, b in zip(expected, structured_masking(GRID, 0.75, "random", noise=noise)))
    # Block size 1: each patch is its own block, so inverse-block masking is uniform random masking.
    assert torch.equal(structured_masking(GRID, 0.75, "inverse_block", noise=noise, block_size=1)[1], expected[1])


@pytest.mark.parametrize("strategy,axis", [("time", 2), ("frequency", 1)])
def test_time_and_frequency_mask_whole_lines(strategy, axis):
    grid, ratio = (10, 6), 0.75  # 45 of 60 patches: 7.5 columns of 6 / 11.25 rows of 4
    mask = structured_masking(grid, ratio, strategy, noise=torch.rand(4, 60))[1].reshape(4, *grid)
    fraction = mask.mean(dim=axis)  # per time column (time) / frequency row (frequency)
    for row in fraction:
        partial = ((row > 0) & (row < 1)).sum().item()
        assert partial <= 1  # at most one line cut through to reach the exact count
    line = grid[1] if strategy == "time" else grid[0]
    assert torch.all((fraction == 1).sum(1) == 45 // line)


def test_inverse_block_visible_patches_are_blocks_around_the_lowest_noise_centers():
    grid, block, ratio = (12, 8), 3, 0.7
    n = grid[0] * grid[1]
    num_keep = n - math.floor(n * ratio)
    noise = torch.rand(2, n)
    mask = structured_masking(grid, ratio, "inverse_block", noise=noise, block_size=block)[1]

    def block_of(center):
        t, f = divmod(center, grid[1])
        return {
            a * grid[1] + b
            for a in range(max(0, t - 1), min(grid[0], t + 2))
            for b in range(max(0, f - 1), min(grid[1], f + 2))
        }

    for row in range(2):
        visible = set(torch.nonzero(mask[row] == 0).flatten().tolist())
        union = set()
        for center in torch.argsort(noise[row]).tolist():
            grown = union | block_of(center)
            if len(grown) >= num_keep:
                # All earlier blocks are visible; the rest of the count comes from this last block.
                assert union <= visible <= grown
                break
            union = grown

    # Visible patches cluster: far more visible neighbours than under uniform random masking.
    def visible_pairs(m):
        v = (m == 0).reshape(-1, *grid).float()
        return (v[:, 1:] * v[:, :-1]).sum() + (v[:, :, 1:] * v[:, :, :-1]).sum()

    assert visible_pairs(mask) > 2 * visible_pairs(random_masking(2, n, ratio, noise)[1])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_model_masking_strategy_with_padding(strategy):
    torch.manual_seed(0)
    model = MaskSpecForPreTraining(small_config(mask_strategy=strategy)).eval()
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    attention_mask = torch.ones(2, 64, dtype=torch.long)
    attention_mask[1, 40:] = 0  # 5 of 8 time patches real
    out = model(inputs, attention_mask=attention_mask, noise=noise)
    expected_mask = structured_masking(GRID, 0.75, strategy, noise=noise, block_size=2)[1]
    assert torch.equal(out.mask, expected_mask) and torch.all(out.mask.sum(1) == 24)
    # Padding patches are left out of the loss, as with random masking.
    real = torch.ones(2, NUM_PATCHES)
    real[1, 5 * 4 :] = 0
    assert torch.allclose(out.loss, hand_loss(out.logits, model.patchify(inputs), out.mask * real), atol=1e-6)
    assert torch.isfinite(out.loss)


def test_classifier_patchout_stays_random():
    from maskspec_hf import MaskSpecForAudioClassification

    model = MaskSpecForAudioClassification(small_config(num_labels=2, patchout_ratio=0.5, mask_strategy="time"))
    model.train()
    outputs = model.maskspec(torch.randn(1, 64, 32), mask_ratio=0.5, noise=torch.rand(1, 32), mask_strategy="random")
    assert outputs.mask.sum() == 16
    assert model(torch.randn(1, 64, 32)).logits.shape == (1, 2)


# --- decoders and the reconstructed subset ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("decoder_type,ratio", DECODERS)
def test_shapes_counts_determinism_and_loss(decoder_type, ratio, strategy):
    torch.manual_seed(0)
    config = small_config(decoder_type=decoder_type, decoder_reconstruct_ratio=ratio, mask_strategy=strategy)
    model = MaskSpecForPreTraining(config).train()
    inputs, noise = torch.randn(3, 64, 32), torch.rand(3, NUM_PATCHES)
    out = model(inputs, noise=noise)
    num_masked = math.floor(NUM_PATCHES * 0.75)
    count = max(1, math.floor(num_masked * ratio))
    assert out.logits.shape == (3, NUM_PATCHES, 64) and out.grid == GRID
    assert torch.all(out.mask.sum(1) == num_masked)
    assert torch.all(out.reconstruction_mask.sum(1) == count)
    assert torch.all(out.reconstruction_mask <= out.mask)  # only masked patches are reconstructed
    # The subset: the masked patches with the smallest noise.
    for row in range(3):
        masked = torch.nonzero(out.mask[row]).flatten()
        expected = masked[torch.argsort(noise[row, masked])[:count]]
        assert set(torch.nonzero(out.reconstruction_mask[row]).flatten().tolist()) == set(expected.tolist())
    targets = model.patchify(inputs)
    assert torch.allclose(out.loss, hand_loss(out.logits, targets, out.reconstruction_mask), atol=1e-6)
    # Targets of patches that are not reconstructed do not count.
    skipped = (out.mask - out.reconstruction_mask)[:, :, None].expand(-1, -1, 64)  # masked, not reconstructed
    changed = model(torch.where(model.unpatchify(skipped, 64) > 0, inputs + 3.0, inputs), noise=noise)
    assert torch.allclose(changed.loss, out.loss, atol=1e-6)
    # Deterministic given the noise, also in training mode.
    again = model(inputs, noise=noise)
    assert torch.equal(again.logits, out.logits) and torch.equal(again.loss, out.loss)
    # Every weight gets a gradient.
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    # Eval mode reconstructs every masked patch.
    model.eval()
    full = model(inputs, noise=noise)
    assert torch.equal(full.reconstruction_mask, full.mask)
    assert torch.allclose(full.loss, hand_loss(full.logits, targets, full.mask), atol=1e-6)


def test_at_least_one_patch_is_reconstructed():
    assert num_reconstructed(24, 0.01) == 1 and num_reconstructed(24, 0.25) == 6 and num_reconstructed(24, 1.0) == 24
    model = MaskSpecForPreTraining(small_config(decoder_reconstruct_ratio=0.01)).train()
    out = model(torch.randn(2, 64, 32))
    assert out.reconstruction_mask.sum(1).tolist() == [1.0, 1.0]


def test_default_config_uses_the_paper_decoder_in_training():
    torch.manual_seed(0)
    model = MaskSpecForPreTraining(small_config()).train()
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    out = model(inputs, noise=noise)
    # The paper's decoder predicts every patch; the loss covers all masked patches.
    assert torch.equal(out.reconstruction_mask, out.mask) and bool((out.logits[out.mask == 0] != 0).all())
    assert torch.allclose(out.loss, hand_loss(out.logits, model.patchify(inputs), out.mask), atol=1e-6)


def test_subset_self_attention_decoder_matches_the_full_one_on_all_masked_patches():
    """The subset path (tokens in masking order, positions gathered) equals the paper's decoder in patch order."""
    torch.manual_seed(0)
    model = MaskSpecForPreTraining(small_config()).eval()
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    attention_mask = torch.ones(2, 64, dtype=torch.long)
    attention_mask[0, 48:] = 0
    out = model(inputs, attention_mask=attention_mask, noise=noise)
    encoded = model.maskspec(inputs, attention_mask=attention_mask, noise=noise)
    order = torch.argsort(encoded.ids_restore, dim=1)
    visible, masked = order[:, :8], order[:, 8:]
    patch_mask = torch.ones(2, NUM_PATCHES, dtype=torch.bool)
    patch_mask[0, 6 * 4 :] = False
    subset = model.decoder(encoded.last_hidden_state, encoded.ids_restore, GRID, patch_mask, visible, masked)
    expected = out.logits.gather(1, masked[:, :, None].expand(-1, -1, 64))
    assert torch.allclose(subset, expected, atol=1e-5)


def test_cross_attention_queries_are_independent():
    """A patch's prediction does not depend on which other patches are reconstructed with it."""
    torch.manual_seed(0)
    model = MaskSpecForPreTraining(small_config(decoder_type="cross_attention")).eval()
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    encoded = model.maskspec(inputs, noise=noise)
    order = torch.argsort(encoded.ids_restore, dim=1)
    visible, masked = order[:, :8], order[:, 8:]
    args = (encoded.last_hidden_state, encoded.ids_restore, GRID, None, visible)
    full = model.decoder(*args, masked)
    assert torch.allclose(model.decoder(*args, masked[:, 5:9]), full[:, 5:9], atol=1e-6)


def test_cross_attention_sdpa_matches_eager_with_padding():
    torch.manual_seed(0)
    config = small_config(decoder_type="cross_attention", decoder_reconstruct_ratio=0.5)
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    attention_mask = torch.ones(2, 64, dtype=torch.long)
    attention_mask[0, 40:] = 0
    sdpa = MaskSpecForPreTraining(config).train()
    eager = MaskSpecForPreTraining(config).train()
    eager.load_state_dict(sdpa.state_dict())
    eager.set_attn_implementation("eager")
    a = sdpa(inputs, attention_mask=attention_mask, noise=noise)
    b = eager(inputs, attention_mask=attention_mask, noise=noise)
    assert torch.allclose(a.logits, b.logits, atol=1e-5) and torch.allclose(a.loss, b.loss, atol=1e-6)


@pytest.mark.parametrize("decoder_type", ["self_attention", "cross_attention"])
def test_gradient_checkpointing_with_the_subset_decoders(decoder_type):
    torch.manual_seed(0)
    config = small_config(decoder_type=decoder_type, decoder_reconstruct_ratio=0.5)
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    plain = MaskSpecForPreTraining(config).train()
    checkpointed = MaskSpecForPreTraining(config).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.activation_checkpointing_enable()
    plain(inputs, noise=noise).loss.backward()
    checkpointed(inputs, noise=noise).loss.backward()
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name


@pytest.mark.parametrize("decoder_type", ["self_attention", "cross_attention"])
def test_reconstruction_figure_is_complete_in_eval_mode(decoder_type):
    torch.manual_seed(0)
    model = MaskSpecForPreTraining(small_config(decoder_type=decoder_type, decoder_reconstruct_ratio=0.25)).eval()
    inputs = torch.randn(1, 64, 32)
    out = model(inputs)
    original, masked_input, reconstruction = model.reconstruct_spectrogram(inputs, out.logits, out.mask)
    visible = ~torch.isnan(masked_input)
    assert torch.equal(reconstruction[visible], original[visible])
    assert bool((reconstruction[~visible] != 0).all())  # every masked patch predicted


# --- training and checkpoints ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "decoder_type,ratio,strategy",
    [(d, r, "random") for d, r in DECODERS] + [("cross_attention", 0.25, s) for s in STRATEGIES[1:]],
)
def test_tiny_model_overfits_one_batch(decoder_type, ratio, strategy):
    torch.manual_seed(0)
    config = small_config(
        decoder_type=decoder_type,
        decoder_reconstruct_ratio=ratio,
        mask_strategy=strategy,
        hidden_size=64,
        num_attention_heads=4,
        intermediate_size=128,
        decoder_hidden_size=64,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=128,
    )
    model = MaskSpecForPreTraining(config).train()
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)  # random targets: only memorizing helps
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    torch.set_flush_denormal(True)
    losses = []
    for _ in range(100):
        loss = model(inputs, noise=noise).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # All 48 masked patches (ratio 1) take longer to memorize than a subset of 12.
    assert losses[-1] < losses[0] / (2.5 if ratio == 1.0 else 20), (losses[0], losses[-1])


@pytest.mark.parametrize(
    "overrides",
    [dict(decoder_type=d, decoder_reconstruct_ratio=r) for d, r in DECODERS]
    + [dict(mask_strategy=s, mask_block_size=3) for s in STRATEGIES[1:]],
)
def test_save_and_load_round_trip(tmp_path, overrides):
    from transformers import AutoModelForPreTraining

    torch.manual_seed(0)
    model = MaskSpecForPreTraining(small_config(**overrides))
    model.save_pretrained(tmp_path)
    loaded, info = AutoModelForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert type(loaded) is MaskSpecForPreTraining
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    for name, value in overrides.items():
        assert getattr(loaded.config, name) == value
    inputs, noise = torch.randn(2, 64, 32), torch.rand(2, NUM_PATCHES)
    for mode in ("train", "eval"):
        getattr(model, mode)(), getattr(loaded, mode)()
        a, b = model(inputs, noise=noise), loaded(inputs, noise=noise)
        assert torch.equal(a.logits, b.logits) and torch.equal(a.reconstruction_mask, b.reconstruction_mask)


def test_checkpoint_without_the_new_fields_loads_as_the_paper_model(tmp_path):
    """A folder saved before these options existed: defaults, the same weights, nothing missing or unexpected."""
    torch.manual_seed(0)
    model = MaskSpecForPreTraining(small_config()).eval()
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    saved = json.loads(config_file.read_text())
    for name in ("decoder_type", "decoder_reconstruct_ratio", "mask_strategy", "mask_block_size"):
        saved.pop(name)
    config_file.write_text(json.dumps(saved))
    loaded, info = MaskSpecForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert loaded.config.decoder_type == "self_attention" and loaded.config.mask_strategy == "random"
    inputs, noise = torch.randn(1, 64, 32), torch.rand(1, NUM_PATCHES)
    assert torch.equal(model(inputs, noise=noise).logits, loaded.eval()(inputs, noise=noise).logits)
