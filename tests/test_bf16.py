# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""bf16: autocast pre-training tracks fp32, bf16 inference matches fp32, and the pipeline runs in bf16.

Small configs on purpose: CPUs without AVX512-BF16/AMX run bf16 matmuls far slower than fp32 (see
benchmarks/README.md), so full-size bf16 would make this file slow. No timing assertions.
"""

import copy

import numpy as np
import pytest
import torch
from transformers import pipeline

from maskspec_hf import (
    MaskSpecConfig,
    MaskSpecFeatureExtractor,
    MaskSpecForAudioClassification,
    MaskSpecForPreTraining,
)
from maskspec_hf.data.synthetic import SOUND_EVENT_TYPES, synthesize_clip


SR = 32000


def bf16_config(**kwargs) -> MaskSpecConfig:
    defaults = dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        decoder_hidden_size=64,
        decoder_num_hidden_layers=2,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=128,
        max_frames=160,
    )
    return MaskSpecConfig(**{**defaults, **kwargs})


@pytest.fixture(scope="module")
def clips():
    # 1.6 s of built-in sound events each -> 160 frames -> 10 x 8 = 80 patches.
    return [synthesize_clip(i, seed=7, clip_seconds=1.6, sampling_rate=SR)[0] for i in range(8)]


@pytest.fixture(scope="module")
def features(clips):
    return MaskSpecFeatureExtractor()(clips, sampling_rate=SR, return_tensors="pt")


def train(model, batches, noises, bf16: bool, lr: float = 1.0e-3) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    model.train()
    for inputs, noise in zip(batches, noises):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outputs = model(**inputs, noise=noise)
        # Under autocast the decoder really computes in bf16; the loss itself is reduced in fp32.
        assert outputs.logits.dtype == (torch.bfloat16 if bf16 else torch.float32)
        assert outputs.loss.dtype == torch.float32
        outputs.loss.backward()
        optimizer.step()
        losses.append(outputs.loss.item())
    return losses


def test_bf16_autocast_pretraining_loss_tracks_fp32(features):
    torch.manual_seed(0)
    model = MaskSpecForPreTraining(bf16_config())
    model_bf16 = copy.deepcopy(model)

    # Same batches and the same masks for both runs: 20 steps over two batches of 4 clips.
    steps, batch_size = 20, 4
    generator = torch.Generator().manual_seed(1)
    batches, noises = [], []
    for step in range(steps):
        rows = slice((step % 2) * batch_size, (step % 2 + 1) * batch_size)
        batches.append({name: features[name][rows] for name in ("input_values", "attention_mask")})
        noises.append(torch.rand(batch_size, 80, generator=generator))

    fp32 = train(model, batches, noises, bf16=False)
    bf16 = train(model_bf16, batches, noises, bf16=True)

    # Within 2 % at every step (on an AVX2 CPU the largest gap is ~1e-4).
    relative = [abs(b - f) / f for b, f in zip(bf16, fp32)]
    assert max(relative) < 0.02, list(zip(fp32, bf16))
    # Both runs learn, by about the same amount.
    assert np.mean(fp32[-4:]) < 0.9 * np.mean(fp32[:4])
    assert np.mean(bf16[-4:]) < 0.9 * np.mean(bf16[:4])
    # The bf16 run trained fp32 master weights (autocast leaves the parameters in fp32).
    assert all(p.dtype == torch.float32 for p in model_bf16.parameters())


def classifier(num_labels=len(SOUND_EVENT_TYPES)):
    torch.manual_seed(0)
    id2label = dict(enumerate(SOUND_EVENT_TYPES[:num_labels]))
    config = bf16_config(num_labels=num_labels, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    return MaskSpecForAudioClassification(config).eval()


def assert_logits_close(logits, reference):
    reference = reference.float()
    scale = reference.abs().max()
    assert (logits.float() - reference).abs().max() < 0.05 * scale
    assert torch.nn.functional.cosine_similarity(logits.float(), reference, dim=-1).min() > 0.995


def test_bf16_inference_logits_close_to_fp32(features):
    model = classifier()
    with torch.inference_mode():
        reference = model(**features).logits

        # bf16 weights and inputs (what `pipeline(..., dtype=torch.bfloat16)` does); the int mask stays int.
        model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
        logits = model_bf16(features["input_values"].bfloat16(), attention_mask=features["attention_mask"]).logits
        assert logits.dtype == torch.bfloat16
        assert_logits_close(logits, reference)

        # Autocast over fp32 weights.
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast_logits = model(**features).logits
        assert autocast_logits.dtype == torch.bfloat16
        assert_logits_close(autocast_logits, reference)

        # Padding still changes nothing in bf16: a short clip alone == the same clip padded in a batch.
        short = features["input_values"][:1, :96].bfloat16()
        padded = torch.cat([short, torch.zeros(1, 64, short.shape[-1], dtype=torch.bfloat16)], dim=1)
        mask = torch.cat([torch.ones(1, 96, dtype=torch.int32), torch.zeros(1, 64, dtype=torch.int32)], dim=1)
        alone = model_bf16(short).logits
        in_batch = model_bf16(
            torch.cat([padded, features["input_values"][1:2].bfloat16()]),
            attention_mask=torch.cat([mask, torch.ones(1, 160, dtype=torch.int32)]),
        ).logits[:1]
        torch.testing.assert_close(in_batch.float(), alone.float(), atol=2e-2, rtol=2e-2)


def test_pipeline_runs_in_bf16_and_keeps_the_attention_mask_int(tmp_path, clips):
    model = classifier()
    model.save_pretrained(tmp_path)
    MaskSpecFeatureExtractor().save_pretrained(tmp_path)

    reference = pipeline("audio-classification", model=str(tmp_path))
    classify = pipeline("audio-classification", model=str(tmp_path), dtype=torch.bfloat16)
    assert classify.model.dtype == torch.bfloat16

    seen = []
    forward = classify.model.forward

    def spy(*args, **kwargs):
        seen.append({name: value.dtype for name, value in kwargs.items() if torch.is_tensor(value)})
        return forward(*args, **kwargs)

    classify.model.forward = spy
    # A clip longer than the model's window (windowed and averaged) and a short one, batched (so padded).
    long_clip = np.concatenate(clips[:3])  # 4.8 s -> 480 frames > max_frames 160
    inputs = [{"raw": long_clip, "sampling_rate": SR}, {"raw": clips[3], "sampling_rate": SR}]
    results = classify(inputs, top_k=3, batch_size=2)
    expected = reference(inputs, top_k=3, batch_size=2)

    assert seen and all(s["input_values"] == torch.bfloat16 for s in seen)
    # BatchFeature.to(dtype) casts floating tensors only: the padding mask reaches the model as int.
    assert all(s["attention_mask"] in (torch.int32, torch.int64) for s in seen)
    for result, ref in zip(results, expected):
        assert result[0]["label"] == ref[0]["label"]
        scores = {r["label"]: r["score"] for r in result}
        for r in ref:
            if r["label"] in scores:
                assert scores[r["label"]] == pytest.approx(r["score"], abs=0.03)
