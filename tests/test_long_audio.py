"""Long inputs: the classifier runs its windows through the encoder in bounded chunks, with unchanged logits."""

import pytest
import torch
from test_modeling import small_config as _small_config

from maskspec_hf import MaskSpecConfig, MaskSpecForAudioClassification


def small_config(**kwargs):
    return _small_config(**{"num_labels": 3, **kwargs})


def record_encoder_batches(model) -> list[int]:
    """The number of windows of every encoder call (a forward hook: deterministic, unlike memory readings)."""
    sizes = []

    def record(module, args, kwargs, output):
        sizes.append(args[0].shape[0])

    model.maskspec.register_forward_hook(record, with_kwargs=True)
    return sizes


def window_logits_by_hand(model, clip: torch.Tensor, starts: list[int], group: int = 64) -> torch.Tensor:
    """Mean logits of the windows at `starts`, cut by slicing and run `group` at a time through the encoder."""
    window = model.config.max_frames
    logits = []
    for first in range(0, len(starts), group):
        windows = torch.stack([clip[start : start + window] for start in starts[first : first + group]])
        logits.append(model.classifier(model.fc_norm(model.maskspec(windows).pooler_output)))
    return torch.cat(logits).mean(0)


def test_30_minute_clip_runs_in_bounded_chunks():
    # 180,000 frames = 30 min at the feature extractor's 10 ms hop, with the default 1000-frame windows.
    torch.manual_seed(0)
    config = MaskSpecConfig(
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=128,
        decoder_hidden_size=64,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=128,
        num_labels=5,
    )
    assert (config.num_mel_bins, config.max_frames, config.inference_window_batch_size) == (128, 1000, 16)
    model = MaskSpecForAudioClassification(config).eval()
    num_frames, window = 180_000, config.max_frames
    clip = torch.randn(1, num_frames, config.num_mel_bins)
    sizes = record_encoder_batches(model)
    with torch.no_grad():
        logits = model(clip).logits
    hop = 496  # half a window, rounded down to whole 16-frame patches; the last window ends flush with the clip
    starts = list(range(0, num_frames - window, hop)) + [num_frames - window]
    assert sum(sizes) == len(starts) and max(sizes) == config.inference_window_batch_size
    # Flat memory: no encoder call sees more windows than one chunk, however long the clip.
    assert len(sizes) == -(-len(starts) // config.inference_window_batch_size)
    with torch.no_grad():
        expected = window_logits_by_hand(model, clip[0], starts)
    torch.testing.assert_close(logits[0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_chunking_does_not_change_the_logits(chunk):
    torch.manual_seed(0)
    one_pass = MaskSpecForAudioClassification(small_config(inference_window_batch_size=1000)).eval()
    chunked = MaskSpecForAudioClassification(small_config(inference_window_batch_size=chunk)).eval()
    chunked.load_state_dict(one_pass.state_dict())
    # A padded batch: a long clip (14 windows), a shorter long one (4 windows) and one within a window.
    values = torch.randn(3, 450, 32)
    attention_mask = torch.zeros(3, 450, dtype=torch.long)
    attention_mask[0], attention_mask[1, :150], attention_mask[2, :40] = 1, 1, 1
    sizes = record_encoder_batches(chunked)
    with torch.no_grad():
        expected = one_pass(values, attention_mask=attention_mask, output_hidden_states=True)
        actual = chunked(values, attention_mask=attention_mask, output_hidden_states=True)
    num_windows = 14 + 4 + 1
    assert sizes == [min(chunk, num_windows - first) for first in range(0, num_windows, chunk)]
    torch.testing.assert_close(actual.logits, expected.logits, atol=1e-6, rtol=1e-6)
    # Hidden states of every window, in window order, as from one pass.
    assert len(actual.hidden_states) == len(expected.hidden_states) == 3
    for a, b in zip(actual.hidden_states, expected.hidden_states):
        assert a.shape == b.shape == (num_windows, 32, 32)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    # And each clip's logits are the mean over its own windows.
    hop = 32
    by_hand = window_logits_by_hand(chunked, values[1, :150], list(range(0, 150 - 64, hop)) + [150 - 64])
    torch.testing.assert_close(actual.logits[1], by_hand, atol=1e-5, rtol=1e-5)


def test_window_batch_size_must_be_positive():
    for bad in (0, -4):
        with pytest.raises(ValueError, match="inference_window_batch_size"):
            small_config(inference_window_batch_size=bad)


def test_training_gradients_flow_through_every_chunk():
    torch.manual_seed(0)
    model = MaskSpecForAudioClassification(small_config(inference_window_batch_size=2)).train()
    values = torch.randn(1, 200, 32)  # 6 windows -> 3 chunks
    out = model(values, labels=torch.tensor([1]))
    out.loss.backward()
    assert model.maskspec.patch_embeddings.projection.weight.grad.abs().sum() > 0
