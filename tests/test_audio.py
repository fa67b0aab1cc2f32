"""The one decode / resample / downmix / validate path (`maskspec_hf.audio`), on real files written with soundfile."""

import io

import numpy as np
import pytest
import soundfile as sf
import torch

from maskspec_hf.audio import ClipError, check_waveform, decode_audio, read_audio, resample_audio


SR = 32000


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encoded(wave: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def reason_of(value, rate: int = SR, min_samples: int = 1) -> str:
    with pytest.raises(ClipError) as error:
        check_waveform(decode_audio(value, rate), min_samples)
    return error.value.reason


@pytest.mark.parametrize("fmt,subtype,atol", [("WAV", "FLOAT", 1e-7), ("WAV", "PCM_16", 1e-4), ("FLAC", None, 1e-4)])
def test_files_decode_to_mono_float32_at_their_rate(tmp_path, fmt, subtype, atol):
    wave = tone(0.5, SR)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, wave, SR, format=fmt, subtype=subtype)
    for value in (
        str(path),
        path,
        {"path": str(path), "bytes": None},
        {"bytes": path.read_bytes(), "path": None},
        path.read_bytes(),
    ):
        decoded = decode_audio(value, SR)
        assert decoded.dtype == np.float32 and decoded.shape == wave.shape
        np.testing.assert_allclose(decoded, wave, atol=atol)
    decoded, rate = read_audio(str(path))
    assert rate == SR and decoded.shape == wave.shape


@pytest.mark.parametrize("subtype,bits", [("PCM_U8", 8), ("PCM_16", 16), ("PCM_24", 24), ("PCM_32", 32)])
def test_integer_pcm_files_decode_to_float_in_unit_range(tmp_path, subtype, bits):
    wave = tone(0.25, SR)
    path = tmp_path / "int.wav"
    sf.write(path, wave, SR, subtype=subtype)  # soundfile quantizes to `bits`-bit integers
    assert sf.info(path).subtype == subtype
    decoded = decode_audio(str(path), SR)
    assert decoded.dtype == np.float32 and np.abs(decoded).max() <= 1.0
    np.testing.assert_allclose(decoded, wave, atol=max(2.0 ** (1 - bits), 1e-6))
    pcm16 = (wave * 32767).astype(np.int16)  # integer samples written as they are
    sf.write(path, pcm16, SR, subtype="PCM_16")
    np.testing.assert_allclose(decode_audio(str(path), SR), pcm16 / 32768, atol=1e-6)


def test_stereo_is_averaged_to_mono(tmp_path):
    left = tone(0.5, SR)
    stereo = np.stack([left, 0.5 * left], axis=1)  # [samples, channels], as soundfile writes
    path = tmp_path / "stereo.flac"
    sf.write(path, stereo, SR)
    np.testing.assert_allclose(decode_audio(str(path), SR), 0.75 * left, atol=1e-4)
    # A decoded array, in datasets' [channels, samples] or in [samples, channels]:
    for array in (stereo.T, stereo):
        np.testing.assert_allclose(decode_audio({"array": array, "sampling_rate": SR}, SR), 0.75 * left, atol=1e-6)


def test_another_rate_is_resampled(tmp_path):
    path = tmp_path / "44k.wav"
    sf.write(path, tone(0.5, 44100), 44100)
    resampled = decode_audio(str(path), SR)
    assert abs(len(resampled) - SR // 2) <= 2 and resampled.dtype == np.float32
    # The tone survives resampling: its spectrum peaks at 440 Hz.
    spectrum = np.abs(np.fft.rfft(resampled))
    assert abs(np.argmax(spectrum) * SR / len(resampled) - 440) < 5
    assert read_audio(str(path))[1] == 44100  # read_audio keeps the file's rate
    from_array = decode_audio({"array": tone(0.5, 48000), "sampling_rate": 48000}, SR)
    assert abs(len(from_array) - SR // 2) <= 2 and from_array.dtype == np.float32
    # A torchcodec decoder (what a decoding datasets.Audio column holds) works as well.
    from torchcodec.decoders import AudioDecoder

    assert abs(len(decode_audio(AudioDecoder(str(path)), SR)) - SR // 2) <= 2


def test_libsndfile_formats_skip_ffmpeg_and_agree_with_it_and_other_formats_go_to_ffmpeg(tmp_path, monkeypatch):
    import shutil
    import subprocess

    from torchcodec.decoders import AudioDecoder

    import maskspec_hf.audio as audio

    wave = tone(1.0, 48000)
    flac = tmp_path / "48k.flac"  # AudioSet's format on the Hub: FLAC at 48 kHz
    sf.write(flac, np.stack([wave, 0.5 * wave], axis=1), 48000)
    ffmpeg = AudioDecoder(str(flac), sample_rate=SR).get_all_samples().data.mean(dim=0).numpy()
    opened = []
    monkeypatch.setattr(audio, "_decoder_of", lambda value, rate: opened.append(value) or AudioDecoder(value["path"]))
    ours = decode_audio(str(flac), SR)
    assert opened == []  # libsndfile read it: no FFmpeg decoder was opened
    n = min(len(ours), len(ffmpeg))
    assert abs(len(ours) - len(ffmpeg)) <= 2 and np.corrcoef(ours[:n], ffmpeg[:n])[0, 1] > 0.999
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg command to write a file libsndfile cannot read")
    m4a = tmp_path / "a.m4a"  # AAC: FFmpeg's only
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(flac), "-c:a", "aac", str(m4a)], check=True)
    assert abs(len(decode_audio(str(m4a), SR)) - SR) <= 2048 and len(opened) == 1


@pytest.mark.parametrize(
    "rate,fmt", [(32000, "WAV"), (48000, "FLAC"), (44100, "WAV"), (16000, "FLAC"), (22050, "OGG")]
)
def test_a_window_is_the_slice_of_the_whole_clip_it_stands_for(rate, fmt, monkeypatch):
    from maskspec_hf.audio import decode_audio_window, window_start

    rng = np.random.default_rng(0)
    stereo = (0.3 * rng.standard_normal((int(3.1 * rate), 2))).astype(np.float32)
    value = {"bytes": encoded(stereo, rate, fmt), "path": None}
    whole = decode_audio(value, SR)
    for seed in range(4):
        window = decode_audio_window(value, SR, SR, np.random.default_rng(seed))
        start = window_start(whole.size, SR, np.random.default_rng(seed))
        assert window.dtype == np.float32
        np.testing.assert_allclose(window, whole[start : start + SR], atol=1e-5)  # soxr's rounding at most
    np.testing.assert_allclose(decode_audio_window(value, SR, SR, None), whole[:SR], atol=1e-5)  # no rng: the start
    if rate == SR:  # nothing resampled: the very same samples
        assert np.array_equal(window, whole[start : start + SR])
    assert np.array_equal(decode_audio_window(value, SR, 10 * SR, np.random.default_rng(1)), whole)  # shorter: whole
    # Only about the window is read from the file.
    import soundfile

    reads = []
    real_read = soundfile.SoundFile.read
    monkeypatch.setattr(
        soundfile.SoundFile, "read", lambda self, n=-1, **kw: reads.append(n) or real_read(self, n, **kw)
    )
    decode_audio_window(value, SR, SR // 4, np.random.default_rng(2))
    assert len(reads) == 1 and 0 < reads[0] < 0.4 * rate


def test_resample_audio_keeps_float_dtype_and_refuses_integers():
    wave = tone(0.5, 48000)
    out = resample_audio(wave, 48000, SR)
    assert out.dtype == np.float32 and abs(len(out) - SR // 2) <= 2
    assert resample_audio(wave, SR, SR) is wave  # same rate: untouched
    assert resample_audio(wave.astype(np.float64), 48000, SR).dtype == np.float64
    with pytest.raises(ValueError, match=r"astype\(np.float32\) / 32768"):
        resample_audio((wave * 32767).astype(np.int16), 48000, SR)


def test_zero_byte_files_are_empty(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    assert reason_of(str(path)) == "empty"
    assert reason_of({"bytes": b"", "path": "zero.wav"}) == "empty"
    assert reason_of(encoded(np.zeros(0, np.float32), SR, "WAV")) == "empty"  # a header without samples


def test_garbage_is_a_decode_error(tmp_path):
    path = tmp_path / "garbage.flac"
    path.write_bytes(b"this is not audio" * 40)
    for value in (str(path), {"bytes": path.read_bytes(), "path": "garbage.flac"}, str(tmp_path / "missing.wav")):
        with pytest.raises(ClipError) as error:
            decode_audio(value, SR)
        assert error.value.reason == "decode_error" and str(error.value)  # a message, on one line
        assert "\n" not in str(error.value)
    with pytest.raises(ClipError, match="integer dtype int16") as error:  # unscaled PCM would be far too loud
        decode_audio({"array": np.zeros(100, np.int16), "sampling_rate": SR}, SR)
    assert error.value.reason == "decode_error"


def test_nan_and_short_clips_fail_the_checks_and_silence_passes(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
    assert reason_of(str(path)) == "non_finite"
    assert reason_of({"array": torch.tensor([0.0, float("inf")]), "sampling_rate": SR}) == "non_finite"
    assert reason_of({"array": np.zeros(10, np.float32), "sampling_rate": SR}, min_samples=100) == "too_short"
    silence = decode_audio(encoded(np.zeros(SR, np.float32), SR, "WAV"), SR)
    check_waveform(silence, 100)  # silence is valid
    with pytest.raises(ClipError, match="fewer than the 100 needed"):
        check_waveform(np.zeros(10, np.float32), 100)
