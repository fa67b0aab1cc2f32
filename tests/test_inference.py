"""Audio-classification pipeline: soxr resampling, any length, bf16, other models, and the batch top-k command."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import AutoFeatureExtractor, pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.audio_classification import AudioClassificationPipeline

from maskspec_hf import MaskSpecConfig, MaskSpecFeatureExtractor, MaskSpecForAudioClassification
from maskspec_hf.cli.classify import parse_args
from maskspec_hf.evaluation.classify import classify
from maskspec_hf.pipeline import MaskSpecAudioClassificationPipeline


def classify_main(argv: list[str]) -> list[dict]:
    return classify(*parse_args(argv))


LABELS = ["bell", "engine", "speech", "water"]
RATE = 32000


def sound(rate: int, seconds: float = 1.5, base: float = 440.0) -> np.ndarray:
    """The same analytic sound at any rate (all content below 7 kHz, so 16 kHz keeps it)."""
    t = np.arange(int(rate * seconds)) / rate
    chirp = np.sin(2 * np.pi * (base * 2 * t + 1500 * t**2))  # 880 Hz -> ~5.4 kHz over 1.5 s
    return (0.3 * np.sin(2 * np.pi * base * t) + 0.2 * chirp * np.exp(-t)).astype(np.float32)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    """A tiny classifier with a 2-s window (200 frames) so that long-audio windowing is cheap to exercise."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("classifier")
    config = MaskSpecConfig.from_preset(
        "tiny", num_hidden_layers=2, max_frames=200, id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )  # fmt: skip
    MaskSpecForAudioClassification(config).save_pretrained(folder)
    MaskSpecFeatureExtractor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifier(model_folder):
    return pipeline("audio-classification", model=str(model_folder))


def logits_of(results) -> np.ndarray:
    return np.array([r["score"] for r in sorted(results, key=lambda r: r["label"])])


def test_pipeline_is_registered_as_a_drop_in(classifier, model_folder, tmp_path):
    assert type(classifier) is MaskSpecAudioClassificationPipeline
    task = PIPELINE_REGISTRY.supported_tasks["audio-classification"]
    assert task["impl"] is MaskSpecAudioClassificationPipeline and task["type"] == "audio"
    assert task["default"]["model"] == ("superb/wav2vec2-base-superb-ks", "372e048")  # built-in default kept
    # Saving the pipeline does not turn the task into a "custom pipeline" of the saved model.
    classifier.save_pretrained(tmp_path / "saved")
    assert "custom_pipelines" not in json.loads((tmp_path / "saved" / "config.json").read_text())
    assert not (tmp_path / "saved" / "pipeline.py").exists()  # the pipeline module is not copied next to it


def test_other_rates_are_resampled_with_soxr(classifier):
    at_32k = logits_of(
        classifier({"array": sound(32000), "sampling_rate": 32000}, function_to_apply="none", top_k=None)
    )
    at_48k = logits_of(
        classifier({"array": sound(48000), "sampling_rate": 48000}, function_to_apply="none", top_k=None)
    )
    at_16k = logits_of(classifier({"raw": sound(16000), "sampling_rate": 16000}, function_to_apply="none", top_k=None))
    other = logits_of(
        classifier({"array": sound(32000, base=150.0), "sampling_rate": 32000}, function_to_apply="none", top_k=None)
    )
    spread = np.abs(other - at_32k).max()  # how much a different sound moves the logits
    assert spread > 0.05
    assert np.abs(at_48k - at_32k).max() < 0.05 * spread  # 48 kHz keeps everything up to 15 kHz
    assert np.abs(at_16k - at_32k).max() < 0.25 * spread  # 16 kHz loses the mel bins above 8 kHz
    # A torch tensor in the dict works too, and resampling can be turned off, with a clear error.
    tensor = classifier(
        {"array": torch.from_numpy(sound(48000)), "sampling_rate": 48000}, function_to_apply="none", top_k=None
    )
    np.testing.assert_allclose(logits_of(tensor), at_48k, atol=1e-5)
    with pytest.raises(ValueError, match="sampled at 48000 Hz but the model expects 32000 Hz.*resample=False"):
        classifier({"array": sound(48000), "sampling_rate": 48000}, resample=False)
    same_rate = classifier(
        {"array": sound(32000), "sampling_rate": 32000}, resample=False, function_to_apply="none", top_k=None
    )
    np.testing.assert_allclose(logits_of(same_rate), at_32k, atol=1e-6)


def test_audio_decoder_input_is_downmixed_and_resampled(classifier, tmp_path):
    from torchcodec.decoders import AudioDecoder

    left, right = sound(48000), sound(48000, base=300.0)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 48000, subtype="FLOAT")
    from_decoder = classifier(AudioDecoder(str(tmp_path / "stereo.wav")), function_to_apply="none", top_k=None)
    from_dict = classifier({"array": (left + right) / 2, "sampling_rate": 48000}, function_to_apply="none", top_k=None)
    np.testing.assert_allclose(logits_of(from_decoder), logits_of(from_dict), atol=1e-4)


def test_any_length_one_result_per_input_and_window_averaging(classifier, model_folder):
    model = MaskSpecForAudioClassification.from_pretrained(model_folder).eval()
    extractor = MaskSpecFeatureExtractor.from_pretrained(model_folder)
    long_clip, short_clip, tiny_clip = sound(RATE, 7.0), sound(RATE, 1.5, base=300.0), sound(RATE, 0.3, base=600.0)
    results = classifier([long_clip, short_clip, tiny_clip], top_k=2)
    assert len(results) == 3 and all(len(r) == 2 for r in results)

    def probabilities(clip):
        with torch.no_grad():
            return model(**extractor(clip, sampling_rate=RATE, return_tensors="pt")).logits.softmax(-1)[0]

    # A clip that fits one window: exactly the single forward pass (padding to a batch changes nothing).
    batched = classifier([long_clip, short_clip, tiny_clip], top_k=None, batch_size=3)
    for clip, result, single in zip((short_clip, tiny_clip), batched[1:], results[1:]):
        expected = probabilities(clip)
        for r in result:
            assert r["score"] == pytest.approx(expected[LABELS.index(r["label"])].item(), abs=1e-5)
        assert [r["label"] for r in single] == [r["label"] for r in result[:2]]
    # A longer clip: the mean of its windows' logits: 200 frames, hop 96 (50 % rounded down to whole 16-frame
    # patches), the last window flush with the end.
    features = extractor(long_clip, sampling_rate=RATE, return_tensors="pt")["input_values"]
    frames = features.shape[1]
    starts = list(range(0, frames - 200, 96)) + [frames - 200]
    assert len(starts) == 7
    with torch.no_grad():
        window_logits = torch.cat([model(input_values=features[:, s : s + 200]).logits for s in starts])
    expected = window_logits.mean(dim=0).softmax(-1)
    for r in batched[0]:
        assert r["score"] == pytest.approx(expected[LABELS.index(r["label"])].item(), abs=1e-5)


def test_pipeline_in_bfloat16(model_folder):
    classifier = pipeline("audio-classification", model=str(model_folder), dtype=torch.bfloat16)
    assert classifier.model.dtype == torch.bfloat16
    results = classifier({"array": sound(48000, 3.0), "sampling_rate": 48000}, top_k=None)
    assert sorted(r["label"] for r in results) == sorted(LABELS)
    assert sum(r["score"] for r in results) == pytest.approx(1.0, abs=0.02)


def test_other_models_get_the_builtin_pipeline_itself():
    """Importing maskspec_hf must not change the task for other models: an AST model gets the stock class and the
    stock results."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    config = ASTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, num_mel_bins=32,
        max_length=100, num_labels=3,
    )  # fmt: skip
    model = ASTForAudioClassification(config).eval()
    extractor = ASTFeatureExtractor(num_mel_bins=32, max_length=100)
    ours = pipeline("audio-classification", model=model, feature_extractor=extractor)
    builtin = pipeline(
        "audio-classification", model=model, feature_extractor=extractor, pipeline_class=AudioClassificationPipeline
    )
    assert type(ours) is AudioClassificationPipeline and type(builtin) is AudioClassificationPipeline
    audio = sound(16000)
    assert ours(audio, top_k=3) == builtin(audio, top_k=3)
    assert ours({"array": audio, "sampling_rate": 16000}) == builtin({"array": audio, "sampling_rate": 16000})


@pytest.mark.parametrize("dtype", [np.int16, np.uint8])
def test_integer_audio_gets_the_same_error_at_every_rate(classifier, dtype):
    """Integer PCM cast to float without scaling is far too loud: it must fail the same way at the model's rate and
    at any other, before resampling could hide its dtype."""
    info = np.iinfo(dtype)
    messages = set()
    for rate in (RATE, 16000, 48000):
        scaled = (sound(rate) * 0.5 + 0.5) * (info.max - info.min) + info.min
        pcm = np.clip(np.round(scaled), info.min, info.max).astype(dtype)
        for key in ("array", "raw"):
            with pytest.raises(ValueError, match=f"integer dtype {np.dtype(dtype).name}") as error:
                classifier({key: pcm, "sampling_rate": rate})
            messages.add(str(error.value))
        with pytest.raises(ValueError, match="integer dtype"):
            classifier({"array": torch.from_numpy(pcm.astype(np.int16)), "sampling_rate": rate})
    assert len(messages) == 1


@pytest.mark.parametrize("rate", [None, "16000", 0, -8000])
def test_a_missing_or_bad_sampling_rate_is_a_clear_error(classifier, rate):
    with pytest.raises(ValueError, match=r'"sampling_rate" of the audio dict must be its rate in Hz'):
        classifier({"array": sound(RATE), "sampling_rate": rate})


def write_audio_folder(root: Path) -> dict[str, np.ndarray]:
    clips = {
        "a.wav": (sound(RATE, 5.0), RATE),
        "b.flac": (sound(48000, 1.0, base=300.0), 48000),
        "nested/c.wav": (sound(16000, 0.6, base=800.0), 16000),
    }
    for name, (audio, rate) in clips.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, audio, rate)
    (root / "notes.txt").write_text("not audio")
    return clips


def test_batch_command_writes_top_k_csv_and_json(model_folder, classifier, tmp_path, capsys):
    folder = tmp_path / "clips"
    clips = write_audio_folder(folder)
    results = classify_main(
        ["--model_name_or_path", str(model_folder), "--inputs", str(folder), "--output_file", str(tmp_path / "top.csv"),
         "--top_k", "2", "--batch_size", "2"]
    )  # fmt: skip
    assert "Wrote the top-2 labels of 3 clips" in capsys.readouterr().out
    with open(tmp_path / "top.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == ["a.wav", "b.flac", "nested/c.wav"]
    assert list(rows[0]) == ["file", "label_1", "score_1", "label_2", "score_2"]
    for row, name in zip(rows, ["a.wav", "b.flac", "nested/c.wav"]):
        audio, rate = sf.read(folder / name, dtype="float32")
        expected = classifier({"array": audio, "sampling_rate": rate}, top_k=2)
        assert [row["label_1"], row["label_2"]] == [r["label"] for r in expected]
        assert float(row["score_1"]) == pytest.approx(expected[0]["score"], abs=1e-4)
    assert len(results) == len(clips)

    single = ["--inputs", str(folder / "a.wav"), "--output_file", str(tmp_path / "top.json"), "--top_k", "4"]
    classify_main(["--model_name_or_path", str(model_folder), "--no_progress"] + single)
    data = json.loads((tmp_path / "top.json").read_text())
    assert len(data) == 1 and data[0]["file"].endswith("a.wav") and len(data[0]["predictions"]) == 4


def test_batch_command_on_a_dataset_split(model_folder, tmp_path):
    import datasets

    rows = {"audio": [], "video_id": []}
    for i, base in enumerate((200.0, 500.0)):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, sound(RATE, 1.0, base=base), RATE)
        rows["audio"].append(str(path))
        rows["video_id"].append(f"yt{i}")
    dataset = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio())
    datasets.DatasetDict({"test": dataset}).save_to_disk(str(tmp_path / "ds"))
    output = tmp_path / "preds.json"
    source = ["--model_name_or_path", str(model_folder), "--dataset_name", str(tmp_path / "ds"), "--eval_split_name",
              "test", "--output_file", str(output)]  # fmt: skip
    classify_main(source + ["--id_column_name", "video_id", "--top_k", "1", "--no_progress"])
    data = json.loads(output.read_text())
    assert [d["video_id"] for d in data] == ["yt0", "yt1"] and all(len(d["predictions"]) == 1 for d in data)
    with pytest.raises(ValueError, match="--id_column_name 'nope' is not a column.*'video_id'"):
        classify_main(source + ["--id_column_name", "nope"])


def test_batch_command_errors(model_folder, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No audio files"):
        classify_main(["--model_name_or_path", str(model_folder), "--inputs", str(tmp_path / "empty"),
                       "--output_file", str(tmp_path / "x.csv")])  # fmt: skip
    with pytest.raises(ValueError, match="either --inputs"):
        classify_main(["--model_name_or_path", str(model_folder), "--output_file", str(tmp_path / "x.csv")])


def test_feature_extractor_declares_what_auto_pipelines_need(model_folder):
    extractor = AutoFeatureExtractor.from_pretrained(model_folder)
    assert extractor.model_input_names == ["input_values", "attention_mask"] and extractor.return_attention_mask
