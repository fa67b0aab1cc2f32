# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""The front ends of the sources (PaSST/MaskSpec, MSM-MAE, AudioMAE's Kaldi fbank) and per-mel-bin normalization,
each against a float64 reference written here from the sources' descriptions: explicit framing loops, a direct DFT
and mel filters built triangle by triangle (not with the library helpers the extractor uses)."""

import json
import math

import numpy as np
import pytest

from maskspec_hf.feature_extraction_maskspec import MaskSpecFeatureExtractor


FLOAT32_EPS = float(np.finfo(np.float32).eps)  # torch.finfo().eps: MSM-MAE's and Kaldi's log guard
# AudioMAE's AudioSet statistics (main_finetune_as.py) and MSM-MAE's (nttcslab/m2d, "for 2022 models").
AUDIOMAE_MEAN, AUDIOMAE_STD = -4.2677393, 4.5689974
MSM_MAE_MEAN, MSM_MAE_STD = -7.1, 4.2
NEW_FIELDS = dict(
    std_multiplier=1.0,
    center=True,
    periodic_window=False,
    remove_dc_offset=False,
    preemphasis_per_frame=False,
    mel_scale="kaldi",
    mel_norm=None,
    log_offset_mode="add",
    pad_or_truncate=False,
)


def clip(num_samples, seed=0):
    """Noise plus a tone and a DC offset (which Kaldi's per-frame DC removal must cancel)."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / 16000
    return (0.1 * rng.standard_normal(num_samples) + 0.2 * np.sin(2 * np.pi * 700 * t) + 0.05).astype(np.float32)


def raw(fe, audio, **kwargs):
    kwargs = {"sampling_rate": fe.sampling_rate, "return_tensors": "np", "padding": False, **kwargs}
    return fe(audio, **kwargs)["input_values"][0].astype(np.float64)


# ---------------------------------------------------------------------------------------------- float64 references


def hann(length, periodic):
    period = length if periodic else length - 1
    return np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / period) for i in range(length)])


def dft_power(segments, n_fft):
    """Power spectrum of each row, zero-padded to n_fft, by the DFT sum itself."""
    bins = np.arange(n_fft // 2 + 1)[:, None]
    times = np.arange(segments.shape[1])[None, :]
    spectrum = segments @ np.exp(-2j * np.pi * bins * times / n_fft).T
    return spectrum.real**2 + spectrum.imag**2


def kaldi_mel_banks(num_bins, n_fft, rate, low, high):
    """Kaldi's (torchaudio.compliance.kaldi.get_mel_banks) triangles, equally spaced on 1127 ln(1 + f / 700)."""

    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    step = (mel(high) - mel(low)) / (num_bins + 1)
    banks = np.zeros((n_fft // 2 + 1, num_bins))
    for m in range(num_bins):
        left, centre, right = (mel(low) + (m + i) * step for i in range(3))
        for k in range(n_fft // 2):  # the Nyquist bin stays 0
            f = mel(k * rate / n_fft)
            if left < f <= centre:
                banks[k, m] = (f - left) / (centre - left)
            elif centre < f < right:
                banks[k, m] = (right - f) / (right - centre)
    return banks


def slaney_mel_banks(num_bins, n_fft, rate, low, high):
    """librosa.filters.mel(htk=False, norm="slaney") (nnAudio's): Slaney's mel scale (linear below 1 kHz, log above),
    triangles in Hz, each scaled to unit area."""
    linear_step, log_step = 200.0 / 3, math.log(6.4) / 27

    def to_mel(f):
        return f / linear_step if f < 1000 else 15 + math.log(f / 1000) / log_step

    def to_hz(m):
        return m * linear_step if m < 15 else 1000 * math.exp(log_step * (m - 15))

    lo, hi = to_mel(low), to_mel(high)
    edges = [to_hz(lo + i * (hi - lo) / (num_bins + 1)) for i in range(num_bins + 2)]
    banks = np.zeros((n_fft // 2 + 1, num_bins))
    for m in range(num_bins):
        left, centre, right = edges[m : m + 3]
        for k in range(n_fft // 2 + 1):
            f = k * rate / n_fft
            weight = min((f - left) / (centre - left), (right - f) / (right - centre))
            banks[k, m] = max(0.0, weight) * 2 / (right - left)
    return banks


def centered_segments(signal, n_fft, win_length, hop):
    """The win_length samples under the window of each frame of a centered STFT, reflecting at the edges."""
    length = len(signal)

    def reflect(i):
        return -i if i < 0 else (2 * (length - 1) - i if i >= length else i)

    start = -(n_fft // 2) + (n_fft - win_length) // 2
    num_frames = 1 + length // hop
    return np.array([[signal[reflect(t * hop + start + j)] for j in range(win_length)] for t in range(num_frames)])


def passt_reference(audio, fe):
    x = audio.astype(np.float64)
    y = np.array([x[i + 1] - fe.preemphasis * x[i] for i in range(len(x) - 1)])
    segments = centered_segments(y, fe.n_fft, fe.win_length, fe.hop_length) * hann(fe.win_length, periodic=False)
    mel = dft_power(segments, fe.n_fft) @ kaldi_mel_banks(fe.feature_size, fe.n_fft, fe.sampling_rate, 0.0, 15000.0)
    return np.log(mel + 1e-5)


def msm_mae_reference(audio):
    """nnAudio MelSpectrogram(16000, n_fft=400, win=400, hop=160, 80 mels, 50-8000 Hz, center, power 2)."""
    segments = centered_segments(audio.astype(np.float64), 400, 400, 160) * hann(400, periodic=True)
    mel = dft_power(segments, 400) @ slaney_mel_banks(80, 400, 16000, 50.0, 8000.0)
    return np.log(mel + FLOAT32_EPS)


def kaldi_fbank_reference(audio, num_bins=128):
    """torchaudio.compliance.kaldi.fbank as AudioMAE calls it, with Kaldi's defaults (snip_edges, DC removal,
    pre-emphasis 0.97 inside each frame, 512-point FFT, 20 Hz to Nyquist, log floored at float eps)."""
    x = audio.astype(np.float64)
    frames = []
    for t in range(1 + (len(x) - 400) // 160):
        frame = x[t * 160 : t * 160 + 400].copy()
        frame -= frame.mean()
        emphasized = np.empty_like(frame)
        for i in range(len(frame)):
            emphasized[i] = frame[i] - 0.97 * frame[max(i - 1, 0)]
        frames.append(emphasized * hann(400, periodic=False))
    mel = dft_power(np.array(frames), 512) @ kaldi_mel_banks(num_bins, 512, 16000, 20.0, 8000.0)
    return np.log(np.maximum(mel, FLOAT32_EPS))


# ---------------------------------------------------------------------------------------------- the three front ends


def test_defaults_are_passt_and_match_reference():
    fe = MaskSpecFeatureExtractor(do_normalize=False)
    audio = clip(5000, seed=1)
    np.testing.assert_allclose(raw(fe, audio), passt_reference(audio, fe), atol=1e-4)


def test_msm_mae_matches_nnaudio_reference():
    fe = MaskSpecFeatureExtractor.from_front_end("msm_mae")
    audio = clip(4000, seed=2)
    expected = msm_mae_reference(audio)
    assert expected.shape == (26, 80)
    unnormalized = MaskSpecFeatureExtractor.from_front_end("msm_mae", do_normalize=False)
    np.testing.assert_allclose(raw(unnormalized, audio), expected, atol=1e-4)
    np.testing.assert_allclose(raw(fe, audio), (expected - MSM_MAE_MEAN) / MSM_MAE_STD, atol=1e-4)


def test_audiomae_matches_kaldi_fbank_reference():
    fe = MaskSpecFeatureExtractor.from_front_end("audiomae")
    audio = clip(4000, seed=3)
    expected = kaldi_fbank_reference(audio)
    assert expected.shape == (1 + (4000 - 400) // 160, 128)
    unnormalized = MaskSpecFeatureExtractor.from_front_end("audiomae", do_normalize=False)
    np.testing.assert_allclose(raw(unnormalized, audio, truncation=False), expected, atol=2e-4)
    normalized = raw(fe, audio, truncation=False)
    np.testing.assert_allclose(normalized, (expected - AUDIOMAE_MEAN) / (2 * AUDIOMAE_STD), atol=1e-4)
    # A constant offset of the whole clip (AudioMAE subtracts the clip mean first) cancels in the per-frame DC removal.
    np.testing.assert_allclose(raw(fe, audio - audio.mean(), truncation=False), normalized, atol=1e-4)


@pytest.mark.parametrize("name", ["msm_mae", "audiomae"])
def test_batch_and_blocks_equal_clips_alone(name):
    fe = MaskSpecFeatureExtractor.from_front_end(name)
    clips = [clip(n, seed=i) for i, n in enumerate([fe.min_num_samples, 9000, 5333])]
    batch = fe(clips, sampling_rate=16000, padding="longest", truncation=False, return_tensors="np")
    fe._frames_per_block = 7  # many blocks, each clip split across them
    for i, audio in enumerate(clips):
        alone = raw(fe, audio, truncation=False)
        assert alone.shape[0] == fe.frames_for_samples(len(audio)) == batch["attention_mask"][i].sum()
        np.testing.assert_allclose(batch["input_values"][i, : len(alone)], alone, atol=1e-5)


def test_frame_counts_and_shortest_clips():
    audiomae = MaskSpecFeatureExtractor.from_front_end("audiomae")
    msm_mae = MaskSpecFeatureExtractor.from_front_end("msm_mae")
    assert audiomae.frames_for_samples(160000) == 998 and msm_mae.frames_for_samples(160000) == 1001
    for fe in (audiomae, msm_mae, MaskSpecFeatureExtractor()):
        assert fe.frames_for_samples(fe.min_num_samples) == fe.min_frames
        assert fe.frames_for_samples(fe.min_num_samples - 1) == fe.min_frames - 1
        for n in (fe.min_num_samples, fe.min_num_samples + 159, 7777):
            assert raw(fe, clip(n), truncation=False).shape[0] == fe.frames_for_samples(n)
        with pytest.raises(ValueError, match="too short"):
            fe(clip(fe.min_num_samples - 1), sampling_rate=fe.sampling_rate)


def test_audiomae_pads_or_truncates_to_1024_frames_like_its_dataset():
    fe = MaskSpecFeatureExtractor.from_front_end("audiomae")
    ten_seconds = clip(160000)
    out = fe(ten_seconds, sampling_rate=16000, return_tensors="np")
    # The raw fbank zero-padded to 1024 frames, then normalized; AudioMAE's model attends to (and pools over) the
    # padded frames, so the mask counts them as input.
    assert out["input_values"].shape == (1, 1024, 128) and out["attention_mask"].all()
    zero_normalized = (0.0 - AUDIOMAE_MEAN) / (2 * AUDIOMAE_STD)
    np.testing.assert_allclose(out["input_values"][0, 998:], zero_normalized, rtol=1e-6)
    np.testing.assert_allclose(out["input_values"][0, :998], raw(fe, ten_seconds, truncation=False), atol=1e-6)
    # Longer clips keep their first 1024 frames; a batch is 1024 frames whatever its clips.
    batch = fe([clip(200000), clip(5000)], sampling_rate=16000, return_tensors="np")
    assert batch["input_values"].shape == (2, 1024, 128) and batch["attention_mask"].all()
    np.testing.assert_allclose(batch["input_values"][0], raw(fe, clip(200000), truncation=True), atol=1e-6)
    # An explicit padding pads as usual: mask 0 on padding, no truncation unless asked.
    masked = fe([ten_seconds, clip(200000)], sampling_rate=16000, padding="longest", return_tensors="np")
    assert masked["input_values"].shape[1] == fe.frames_for_samples(200000)
    assert masked["attention_mask"].sum(1).tolist() == [998, fe.frames_for_samples(200000)]
    untruncated = fe(clip(200000), sampling_rate=16000, truncation=False, return_tensors="np")
    assert untruncated["input_values"].shape[1] == fe.frames_for_samples(200000)
    # padding_value follows overridden statistics.
    other = MaskSpecFeatureExtractor.from_front_end("audiomae", mean=-6.0, std=5.0)
    assert other.padding_value == pytest.approx(6.0 / 10.0)


# ---------------------------------------------------------------------------------------------- per-bin statistics


def test_per_bin_normalization():
    audio = clip(9000, seed=4)
    unnormalized = raw(MaskSpecFeatureExtractor(do_normalize=False), audio)
    mean, std = np.linspace(-9, -3, 128), np.linspace(1, 4, 128)
    fe = MaskSpecFeatureExtractor(mean=mean, std=std)  # numpy arrays are stored as lists
    assert isinstance(fe.mean, list) and len(fe.std) == 128
    np.testing.assert_allclose(raw(fe, audio), (unnormalized - mean) / std, atol=1e-5)
    # Mixed: one mean per bin with one std; std_multiplier applies on top.
    mixed = MaskSpecFeatureExtractor(mean=mean.tolist(), std=2.0, std_multiplier=3.0)
    np.testing.assert_allclose(raw(mixed, audio), (unnormalized - mean) / 6.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(mean=[0.0] * 127), "mean has 127 values but there are 128 mel bins"),
        (dict(std=[1.0] * 80, feature_size=64), "std has 80 values but there are 64 mel bins"),
        (dict(mean=np.zeros((2, 64))), "1-D"),
        (dict(std=[1.0] * 127 + [0.0]), "std and std_multiplier must be > 0"),
        (dict(mean=[float("nan")] * 128), "mean must be finite"),
        (dict(std_multiplier=0.0), "std and std_multiplier must be > 0"),
        (dict(mel_scale="mel"), "mel_scale must be one of"),
        (dict(mel_norm="area"), "mel_norm must be one of"),
        (dict(log_offset_mode="clip"), "log_offset_mode must be one of"),
    ],
)
def test_invalid_options_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaskSpecFeatureExtractor(**kwargs)


def test_unknown_front_end():
    with pytest.raises(ValueError, match=r"Unknown front end 'beats'.*'audiomae'"):
        MaskSpecFeatureExtractor.from_front_end("beats")


def test_per_bin_stats():
    clips = [clip(n, seed=i) for i, n in enumerate([8000, 20000, 11000])]
    fe = MaskSpecFeatureExtractor()
    global_mean, global_std = fe.compute_normalization_stats(clips, sampling_rate=32000, update=False)
    mean, std = fe.compute_normalization_stats(clips, sampling_rate=32000, per_bin=True, batch_size=2)
    assert fe.mean == mean and fe.std == std and len(mean) == len(std) == 128
    # Every bin has the same frames: the global statistics are the pooled per-bin ones.
    mean, std = np.array(mean), np.array(std)
    assert mean.mean() == pytest.approx(global_mean, abs=1e-9)
    assert math.sqrt((std**2 + (mean - global_mean) ** 2).mean()) == pytest.approx(global_std, abs=1e-9)
    out = fe(clips, sampling_rate=32000, return_tensors="np")
    values = out["input_values"][out["attention_mask"].astype(bool)]  # [real frames, 128]
    np.testing.assert_allclose(values.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(values.std(0), 1, atol=1e-4)


def test_per_bin_stats_of_an_empty_mel_filter():
    # AudioMAE's 128 Kaldi bins at a 512-point FFT include one filter narrower than an FFT bin: always the log floor.
    fe = MaskSpecFeatureExtractor.from_front_end("audiomae")
    empty = np.flatnonzero((fe.mel_filters == 0).all(dim=0).numpy())
    assert len(empty) == 1
    mean, std = fe.compute_normalization_stats([clip(8000), clip(6000, seed=1)], sampling_rate=16000, per_bin=True)
    assert mean[empty[0]] == pytest.approx(math.log(FLOAT32_EPS)) and std[empty[0]] == 1.0
    assert all(s > 0 for s in std) and np.isfinite(fe(clip(8000), sampling_rate=16000)["input_values"]).all()


# ---------------------------------------------------------------------------------------------- serialization


@pytest.mark.parametrize("name", ["passt", "maskspec", "msm_mae", "audiomae", "msm-mae"])
def test_front_end_round_trip(tmp_path, name):
    overrides = {"mean": np.linspace(-6, -4, 128).tolist()} if name == "maskspec" else {}
    fe = MaskSpecFeatureExtractor.from_front_end(name, **overrides)
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert "front_end" not in saved and "mel_filters" not in saved and "window" not in saved
    assert set(NEW_FIELDS) <= set(saved)
    loaded = MaskSpecFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == fe.to_dict()
    audio = clip(int(0.4 * fe.sampling_rate), seed=5)
    first, second = (f(audio, sampling_rate=fe.sampling_rate, return_tensors="np") for f in (fe, loaded))
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_defaults_unchanged(tmp_path):
    default = MaskSpecFeatureExtractor()
    # Today's front end: the new fields at their defaults, and the preset names of PaSST and MaskSpec.
    for same in (
        MaskSpecFeatureExtractor(**NEW_FIELDS),
        MaskSpecFeatureExtractor.from_front_end("passt"),
        MaskSpecFeatureExtractor.from_front_end("maskspec"),
    ):
        assert same.to_dict() == default.to_dict()
    assert {key: getattr(default, key) for key in NEW_FIELDS} == NEW_FIELDS
    assert (default.mean, default.std, default.padding_value) == (-4.5, 5.0, 0.0)

    # A preprocessor_config.json from before these fields loads to the same extractor and the same features.
    default.save_pretrained(tmp_path)
    config_file = tmp_path / "preprocessor_config.json"
    old = {k: v for k, v in json.loads(config_file.read_text()).items() if k not in NEW_FIELDS}
    config_file.write_text(json.dumps(old))
    loaded = MaskSpecFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == default.to_dict()
    audio = clip(20000, seed=6)
    expected = (passt_reference(audio[:5000], default) + 4.5) / 5.0
    np.testing.assert_allclose(raw(loaded, audio[:5000]), expected, atol=1e-4)
    for kwargs in ({}, {"truncation": True, "max_length": 40}, {"padding": "max_length", "max_length": 80}):
        first, second = (f(audio, sampling_rate=32000, return_tensors="np", **kwargs) for f in (default, loaded))
        np.testing.assert_array_equal(first["input_values"], second["input_values"])
        assert first["attention_mask"].shape == first["input_values"].shape[:2]
