# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Tests of MaskSpecFeatureExtractor: reference maths, batching, padding, input checks and normalization stats."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers.audio_utils import mel_filter_bank
from transformers.testing_utils import CaptureLogger

from maskspec_hf import feature_extraction_maskspec
from maskspec_hf.feature_extraction_maskspec import MaskSpecFeatureExtractor


SR = 32000
REAL_CLIP = Path(__file__).resolve().parents[2] / "shared/data/audioset/Y__p-iA312kg.wav"
# The MSM-MAE-style 16 kHz / 80-mel setup.
CONFIG_16K = dict(sampling_rate=16000, feature_size=80, n_fft=400, win_length=400, hop_length=160, f_max=8000.0)


def noise(num_samples, seed=0, scale=0.1):
    return (np.random.default_rng(seed).standard_normal(num_samples) * scale).astype(np.float32)


@pytest.fixture(scope="module")
def fe():
    return MaskSpecFeatureExtractor()


def features(fe, audio, **kwargs):
    kwargs.setdefault("sampling_rate", fe.sampling_rate)
    kwargs.setdefault("return_tensors", "np")
    return fe(audio, **kwargs)


def mel_filters(fe):
    return mel_filter_bank(
        num_frequency_bins=fe.n_fft // 2 + 1,
        num_mel_filters=fe.feature_size,
        min_frequency=fe.f_min,
        max_frequency=fe.f_max,
        sampling_rate=fe.sampling_rate,
        norm=None,
        mel_scale="kaldi",
        triangularize_in_mel_space=True,
    )


# ---------------------------------------------------------------------------------------------- reference maths


@pytest.mark.parametrize("config", [{}, CONFIG_16K, {"preemphasis": 0.0}], ids=["32k", "16k", "no-preemphasis"])
def test_matches_torch_stft_reference(config):
    fe = MaskSpecFeatureExtractor(**config)
    audio = noise(41617, seed=1)

    x = torch.from_numpy(audio)
    if fe.preemphasis:
        x = x[1:] - fe.preemphasis * x[:-1]
    stft = torch.stft(
        x,
        n_fft=fe.n_fft,
        hop_length=fe.hop_length,
        win_length=fe.win_length,
        window=torch.hann_window(fe.win_length, periodic=False),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    mel = stft.abs().square().T @ torch.from_numpy(mel_filters(fe)).float()
    expected = ((mel + fe.log_offset).log() - fe.mean) / fe.std

    out = features(fe, audio)["input_values"]
    assert out.shape == (1, fe.frames_for_samples(len(audio)), fe.feature_size)
    np.testing.assert_allclose(out[0], expected.numpy(), atol=1e-4)


def test_matches_numpy_framing_reference(fe):
    audio = noise(20011, seed=2)
    y = audio[1:].astype(np.float64) - fe.preemphasis * audio[:-1]
    padded = np.pad(y, fe.n_fft // 2, mode="reflect")
    num_frames = 1 + len(y) // fe.hop_length
    frames = padded[np.arange(num_frames)[:, None] * fe.hop_length + np.arange(fe.n_fft)]
    window = np.zeros(fe.n_fft)
    left = (fe.n_fft - fe.win_length) // 2
    window[left : left + fe.win_length] = np.hanning(fe.win_length)  # symmetric Hann
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    expected = (np.log(power @ mel_filters(fe) + fe.log_offset) - fe.mean) / fe.std

    np.testing.assert_allclose(features(fe, audio)["input_values"][0], expected, atol=1e-4)


# ---------------------------------------------------------------------------------------------- batching & shapes


def test_batch_equals_clips_alone():
    fe = MaskSpecFeatureExtractor(padding_value=-3.0)
    lengths = [fe.min_num_samples, 32000, 12345, 20000]
    clips = [noise(n, seed=i) for i, n in enumerate(lengths)]
    batch = features(fe, clips)
    values, mask = batch["input_values"], batch["attention_mask"]
    assert values.shape == (4, fe.frames_for_samples(32000), fe.feature_size)
    assert values.dtype == np.float32

    for i, clip in enumerate(clips):
        n = fe.frames_for_samples(len(clip))
        alone = features(fe, clip)["input_values"][0]
        assert alone.shape == (n, fe.feature_size)
        assert mask[i].sum() == n and mask[i, :n].all()
        np.testing.assert_allclose(values[i, :n], alone, atol=1e-5)
        assert (values[i, n:] == -3.0).all()


def test_frame_counts_and_16k_setup(fe):
    assert fe.frames_for_samples(10 * SR) == 1000
    assert features(fe, noise(10 * SR))["input_values"].shape == (1, 1000, 128)
    assert fe.num_mel_bins == 128 and fe.min_frames == 16
    assert fe.frames_for_samples(fe.min_num_samples) == fe.min_frames
    assert fe.frames_for_samples(fe.min_num_samples - 1) == fe.min_frames - 1

    fe16 = MaskSpecFeatureExtractor(**CONFIG_16K)
    out = features(fe16, noise(16000 * 3))["input_values"]
    assert out.shape == (1, 300, 80) and fe16.num_mel_bins == 80

    # Without pre-emphasis the signal keeps its length: one more frame for a whole number of hops.
    assert MaskSpecFeatureExtractor(preemphasis=0.0).frames_for_samples(10 * SR) == 1001


def test_num_mel_bins_is_read_only(fe):
    with pytest.raises(AttributeError):
        fe.num_mel_bins = 64


# ---------------------------------------------------------------------------------------------- padding & outputs


def test_padding_max_length_and_multiple(fe):
    clips = [noise(8000), noise(16000, seed=1)]
    out = features(fe, clips, padding="max_length", max_length=120)
    assert out["input_values"].shape == (2, 120, 128)
    assert out["attention_mask"].sum(1).tolist() == [fe.frames_for_samples(8000), fe.frames_for_samples(16000)]
    assert (out["input_values"][0, fe.frames_for_samples(8000) :] == fe.padding_value).all()

    assert features(fe, noise(8000), padding="max_length")["input_values"].shape[1] == fe.max_length_frames
    # Longer than max_length without truncation: nothing is cut, the batch pads to its longest clip.
    assert features(fe, clips, padding="max_length", max_length=10)["input_values"].shape[1] == 50
    assert features(fe, clips, pad_to_multiple_of=16)["input_values"].shape[1] == 64


def test_truncation_keeps_first_frames(fe):
    audio = noise(3 * SR)
    full = features(fe, audio)["input_values"][0]
    out = features(fe, [audio, noise(8000)], truncation=True, max_length=120)
    assert out["input_values"].shape == (2, 120, 128)
    assert out["attention_mask"][0].all()
    np.testing.assert_allclose(out["input_values"][0], full[:120], atol=1e-5)
    # Truncation is never forced.
    assert features(fe, noise(12 * SR))["input_values"].shape[1] == 1200
    assert features(fe, noise(12 * SR), truncation=True)["input_values"].shape[1] == 1000


def test_no_padding_returns_one_array_per_clip(fe):
    clips = [noise(8000), noise(16000, seed=1)]
    out = fe(clips, sampling_rate=SR, padding=False)
    assert [v.shape for v in out["input_values"]] == [(25, 128), (50, 128)]
    assert [m.tolist().count(1) for m in out["attention_mask"]] == [25, 50]
    with pytest.raises(ValueError, match="padding='longest'"):
        fe(clips, sampling_rate=SR, padding="do_not_pad", return_tensors="pt")
    # Equal lengths stack fine.
    stacked = fe([noise(8000)] * 2, sampling_rate=SR, padding=False, return_tensors="pt")
    assert stacked["input_values"].shape == (2, 25, 128)


def test_return_tensors(fe):
    audio = noise(8000)
    pt = fe(audio, sampling_rate=SR, return_tensors="pt")
    assert isinstance(pt["input_values"], torch.Tensor) and pt["input_values"].dtype == torch.float32
    assert pt["input_values"].shape == (1, 25, 128) and pt["attention_mask"].shape == (1, 25)
    assert not pt["attention_mask"].is_floating_point()

    np_out = fe(audio, sampling_rate=SR, return_tensors="np")
    assert isinstance(np_out["input_values"], np.ndarray) and np_out["input_values"].dtype == np.float32

    plain = fe([audio, audio], sampling_rate=SR)
    assert isinstance(plain["input_values"], list) and plain["input_values"][0].shape == (25, 128)
    np.testing.assert_array_equal(plain["input_values"][0], np_out["input_values"][0])

    assert "attention_mask" not in fe(audio, sampling_rate=SR, return_attention_mask=False)


def test_accepts_tensors_lists_and_other_float_dtypes(fe):
    audio = noise(8000)
    expected = features(fe, audio)["input_values"]
    for same in (torch.from_numpy(audio), audio.tolist(), audio.astype(np.float64)):
        np.testing.assert_allclose(features(fe, same)["input_values"], expected, atol=1e-6)
    np.testing.assert_allclose(features(fe, audio.astype(np.float16))["input_values"], expected, atol=1e-2)
    batch = features(fe, [torch.from_numpy(audio), audio.tolist()])["input_values"]
    np.testing.assert_allclose(batch, np.concatenate([expected, expected]), atol=1e-6)


# ---------------------------------------------------------------------------------------------- real audio


def test_real_clip():
    if not REAL_CLIP.exists():
        pytest.skip(f"{REAL_CLIP} not found")
    audio, rate = sf.read(REAL_CLIP, dtype="float32")
    fe = MaskSpecFeatureExtractor()
    values = features(fe, audio, sampling_rate=rate)["input_values"]
    assert values.shape == (1, 1000, 128) and np.isfinite(values).all()
    # PaSST's fixed (x + 4.5) / 5 gives mean ~ -0.48, std ~ 0.41 on this clip (raw log-mel: -6.92, 2.04).
    assert abs(values.mean()) < 1.5 and 0.3 < values.std() < 2


# ---------------------------------------------------------------------------------------------- input checks


BAD_INPUTS = {
    "2-D array": (np.zeros((2, 8000), np.float32), r"mono 1-D.*audio\.mean\(axis=0\)"),
    "2-D tensor": (torch.zeros(1, 8000), "mono 1-D"),
    "stereo clip in batch": ([np.zeros(8000, np.float32), np.zeros((8000, 2), np.float32)], "clip 1 .*mono 1-D"),
    "empty": (np.zeros(0, np.float32), "empty"),
    "empty list": ([], "empty"),
    "empty clip in batch": ([np.zeros(8000, np.float32), []], "clip 1 is empty"),
    "too short": ([np.zeros(8000, np.float32), np.zeros(4000, np.float32)], r"clip 1 is too short.*0\.150 s"),
    "nan": (np.array([0.0, np.nan] * 4000, np.float32), "NaN or Inf"),
    "inf": ([np.zeros(8000, np.float32), np.full(8000, np.inf, np.float32)], "clip 1 contains NaN or Inf"),
    "int16": (np.zeros(8000, np.int16), r"integer dtype int16.*astype\(np\.float32\) / 32768"),
    "int tensor": (torch.zeros(8000, dtype=torch.int32), "integer dtype"),
    "complex": (np.zeros(8000, np.complex64), "complex"),
    "bool": (np.zeros(8000, bool), "bool"),
    "strings": (["a"] * 8000, "clip 0 is a file path or encoded bytes"),
    "object": (np.array([None] * 8000), "object or string"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_raises_helpful_error(fe, name):
    audio, match = BAD_INPUTS[name]
    with pytest.raises(ValueError, match=match):
        fe(audio, sampling_rate=SR)


@pytest.mark.parametrize(
    "audio",
    ["clip.wav", Path("clip.wav"), ["a.wav", "b.wav"], np.array(["a.wav", "b.wav"]), b"RIFF\x00\x00WAVE"],
    ids=["str", "path", "list-of-str", "numpy-str", "bytes"],
)
def test_file_path_says_to_decode_first(fe, audio):
    with pytest.raises(ValueError, match=r"file path.*takes decoded waveforms.*soundfile\.read.*pipeline") as info:
        fe(audio, sampling_rate=SR)
    assert "downmix" not in str(info.value)


@pytest.mark.parametrize(
    "audio,hint",
    [
        (np.zeros(8000, np.int16), "/ 32768"),
        (np.full(8000, 128, np.uint8), r"\(audio\.astype\(np\.float32\) - 128\) / 128"),
        (np.zeros(8000, np.int32), "/ 2147483648"),
        (torch.zeros(8000, dtype=torch.int16), r"audio\.float\(\) / 32768"),
        (torch.zeros(8000, dtype=torch.uint8), r"\(audio\.float\(\) - 128\) / 128"),
    ],
    ids=["int16", "uint8", "int32", "torch-int16", "torch-uint8"],
)
def test_integer_pcm_gets_the_same_error_at_every_rate(fe, audio, hint):
    # Rejected (never scaled, never resampled as is) with the same message at our rate, at another rate with
    # resampling, and at another rate without it (where the rate error must not hide the dtype error).
    messages = []
    for rate, resample in ((SR, False), (16000, True), (16000, False), (None, False)):
        with pytest.raises(ValueError, match="integer dtype.*" + hint) as info:
            fe(audio, sampling_rate=rate, resample=resample)
        messages.append(str(info.value))
    assert len(set(messages)) == 1


@pytest.mark.parametrize("rate", [None, "32000", 0, -16000, float("nan"), True])
def test_invalid_sampling_rate_in_config_is_a_clear_error(tmp_path, rate):
    with pytest.raises(ValueError, match="`sampling_rate` must be a positive number of Hz"):
        MaskSpecFeatureExtractor(sampling_rate=rate)
    # The same from a saved folder whose preprocessor_config.json says "sampling_rate": null (or another bad value).
    MaskSpecFeatureExtractor().save_pretrained(tmp_path)
    config_file = tmp_path / "preprocessor_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "sampling_rate": rate}))
    with pytest.raises(ValueError, match="`sampling_rate` must be a positive number of Hz"):
        MaskSpecFeatureExtractor.from_pretrained(tmp_path)


@pytest.mark.parametrize("rate", ["32000", 0, -1, float("inf")])
def test_invalid_input_sampling_rate_is_a_clear_error(fe, rate):
    with pytest.raises(ValueError, match=r"`sampling_rate` \(the rate of the audio\) must be a positive number"):
        fe(noise(8000), sampling_rate=rate, resample=True)


def test_wrong_sampling_rate(fe):
    with pytest.raises(ValueError, match=r"got 48000 Hz, expected 32000 Hz.*cast_column.*resample=True"):
        fe(noise(48000), sampling_rate=48000)


def test_missing_sampling_rate_warns(fe):
    logger = feature_extraction_maskspec.logger
    with CaptureLogger(logger) as captured:
        fe(noise(8000))
    assert "sampling_rate" in captured.out


def test_silence_is_finite(fe):
    values = features(fe, np.zeros(SR, np.float32))["input_values"]
    assert np.isfinite(values).all()
    np.testing.assert_allclose(values, (np.log(fe.log_offset) - fe.mean) / fe.std, atol=1e-5)


def test_resample(fe):
    t = np.arange(2 * 48000) / 48000
    audio_48k = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = features(fe, audio_48k, sampling_rate=48000, resample=True)["input_values"]
    assert out.shape == (1, fe.frames_for_samples(2 * SR), 128) and np.isfinite(out).all()
    # Same tone generated at 32 kHz: nearly the same spectrogram away from the edges.
    t = np.arange(2 * SR) / SR
    native = features(fe, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))["input_values"]
    assert np.abs(out[0, 10:-10] - native[0, 10:-10]).mean() < 0.05


# ---------------------------------------------------------------------------------------------- normalization stats


def normalized_real_values(fe, clips):
    out = features(fe, clips)
    return out["input_values"][out["attention_mask"].astype(bool)]


def test_stats_on_list_of_arrays():
    clips = [noise(n, seed=i, scale=0.05 * (i + 1)) for i, n in enumerate([8000, 32000, 17000, 9000, 24000])]
    fe = MaskSpecFeatureExtractor()
    mean, std = fe.compute_normalization_stats(clips, sampling_rate=SR, batch_size=2)
    assert (fe.mean, fe.std) == (mean, std)
    values = normalized_real_values(fe, clips)
    assert abs(values.mean()) < 1e-4 and abs(values.std() - 1) < 1e-4

    # Streaming merge over batches equals one big batch; update=False leaves the extractor alone.
    other = MaskSpecFeatureExtractor()
    mean1, std1 = other.compute_normalization_stats(clips, sampling_rate=SR, batch_size=16, update=False)
    assert mean1 == pytest.approx(mean, abs=1e-6) and std1 == pytest.approx(std, abs=1e-6)
    assert (other.mean, other.std) == (-4.5, 5.0)

    # max_clips stops early.
    assert fe.compute_normalization_stats(clips, sampling_rate=SR, max_clips=1, update=False) == pytest.approx(
        MaskSpecFeatureExtractor().compute_normalization_stats(clips[:1], sampling_rate=SR)
    )


def test_stats_on_dataset_with_audio_column(tmp_path):
    datasets = pytest.importorskip("datasets")
    clips = [noise(n, seed=i, scale=0.05 * (i + 1)) for i, n in enumerate([8000, 32000, 17000])]
    paths = []
    for i, clip in enumerate(clips):
        paths.append(str(tmp_path / f"clip{i}.wav"))
        sf.write(paths[-1], clip, SR, subtype="FLOAT")
    dataset = datasets.Dataset.from_dict({"audio": paths, "label": [0, 1, 2]})
    dataset = dataset.cast_column("audio", datasets.Audio(sampling_rate=SR))

    fe = MaskSpecFeatureExtractor()
    mean, std = fe.compute_normalization_stats(dataset, batch_size=2)
    expected = MaskSpecFeatureExtractor().compute_normalization_stats(clips, sampling_rate=SR)
    assert (mean, std) == pytest.approx(expected, abs=1e-5)
    values = normalized_real_values(fe, clips)
    assert abs(values.mean()) < 1e-3 and abs(values.std() - 1) < 1e-3

    # Streaming datasets and rows holding {"array", "sampling_rate"} dicts work too.
    streamed = fe.compute_normalization_stats(dataset.to_iterable_dataset(), update=False)
    assert streamed == pytest.approx(expected, abs=1e-5)
    rows = [{"audio": {"array": clip, "sampling_rate": SR}} for clip in clips]
    assert fe.compute_normalization_stats(rows, update=False) == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------------------------------------- serialization


def test_save_and_load_round_trip(tmp_path):
    fe = MaskSpecFeatureExtractor(**CONFIG_16K, max_length_frames=500, preemphasis=0.9)
    fe.compute_normalization_stats([noise(16000), noise(24000, seed=1)], sampling_rate=16000)
    fe.save_pretrained(tmp_path)

    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert "mel_filters" not in saved and "window" not in saved
    assert saved["mean"] == fe.mean and saved["std"] == fe.std

    loaded = MaskSpecFeatureExtractor.from_pretrained(tmp_path)
    for key in [*CONFIG_16K, "max_length_frames", "preemphasis", "mean", "std", "log_offset", "do_normalize"]:
        assert getattr(loaded, key) == getattr(fe, key), key
    audio = noise(16000, seed=3)
    np.testing.assert_array_equal(features(loaded, audio)["input_values"], features(fe, audio)["input_values"])


def test_invalid_config():
    with pytest.raises(ValueError, match="f_max=8000"):
        MaskSpecFeatureExtractor(sampling_rate=16000)


def test_module_imports_only_remote_code_safe_packages():
    # The file is shipped as remote code, where maskspec_hf is not installed.
    tree = ast.parse(Path(feature_extraction_maskspec.__file__).read_text())
    top_level = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            top_level.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports break remote code"
            top_level.add(node.module.split(".")[0])
    assert top_level <= {"math", "os", "collections", "numpy", "torch", "transformers", "soxr"}
    assert feature_extraction_maskspec.__all__ == ["MaskSpecFeatureExtractor"]
