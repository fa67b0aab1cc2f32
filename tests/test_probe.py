"""Linear probe: frozen encoder embeddings + logistic regression, pre-trained vs. random init with one flag."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from maskspec_hf import MaskSpecConfig, MaskSpecFeatureExtractor, MaskSpecForPreTraining
from maskspec_hf.cli.probe import parse_args
from maskspec_hf.evaluation.probe import pooled_embeddings, probe
from maskspec_hf.loading import load_encoder


def main(argv: list[str]) -> dict:
    return probe(*parse_args(argv))


CLASSES = {"high": 4000.0, "low": 300.0, "mid": 1200.0}


def tone(freq: float, seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Folder-per-class audiofolder with train and test splits of 1-s tones at 32 kHz."""
    root = tmp_path_factory.mktemp("tones")
    for split, count in (("train", 4), ("test", 3)):
        for name, freq in CLASSES.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                seed = i + (100 if split == "test" else 0)
                sf.write(folder / f"{name}_{i}.wav", tone(freq * (1 + 0.03 * i), 1.0, 32000, seed), 32000)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(1234)  # not the probe's --seed (0), so "pre-trained" and --random_init weights differ
    folder = tmp_path_factory.mktemp("pretrained")
    config = MaskSpecConfig.from_preset("tiny", num_hidden_layers=2, decoder_num_hidden_layers=1, max_frames=64)
    MaskSpecForPreTraining(config).save_pretrained(folder)
    MaskSpecFeatureExtractor().save_pretrained(folder)
    return folder


def test_probe_pretrained_vs_random_init_with_one_flag(checkpoint, data_dir, tmp_path, capsys):
    common = ["--model_name_or_path", str(checkpoint), "--data_dir", str(data_dir), "--eval_split_name", "test"]
    pretrained = main(common + ["--output_file", str(tmp_path / "pretrained.json")])
    random = main(common + ["--random_init", "--output_file", str(tmp_path / "random.json")])
    out = capsys.readouterr().out
    assert f"Linear probe of {checkpoint} (pre-trained): accuracy" in out
    assert f"Linear probe of {checkpoint} (random init): accuracy" in out
    assert json.loads((tmp_path / "pretrained.json").read_text()) == pretrained
    for result in (pretrained, random):
        assert result["metric"] == "accuracy" and 0.0 <= result["score"] <= 1.0
        assert result["train_examples"] == 12 and result["test_examples"] == 9 and result["embedding_size"] == 192
    assert (pretrained["weights"], random["weights"]) == ("pre-trained", "random init")
    # Tones an octave and more apart are separable even by a random encoder's pooled features.
    assert pretrained["score"] >= 0.8 and random["score"] >= 0.8


def test_random_init_flag_changes_only_the_weights(checkpoint):
    trained, _ = load_encoder(str(checkpoint))
    fresh, _ = load_encoder(str(checkpoint), random_init=True, seed=0)
    again, _ = load_encoder(str(checkpoint), random_init=True, seed=0)
    reference = MaskSpecForPreTraining.from_pretrained(checkpoint).maskspec.state_dict()
    for name, tensor in reference.items():
        torch.testing.assert_close(trained.state_dict()[name], tensor)
        torch.testing.assert_close(fresh.state_dict()[name], again.state_dict()[name])  # seeded
    drop = lambda config: {k: v for k, v in config.to_dict().items() if k != "_name_or_path"}  # noqa: E731
    assert drop(fresh.config) == drop(trained.config)
    assert not torch.equal(fresh.state_dict()["layers.0.mlp.fc1.weight"], reference["layers.0.mlp.fc1.weight"])


def test_multi_label_probe_reports_map(checkpoint, tmp_path, audioset_class_index):
    mids = ["/m/09x0r", "/m/0jbk", "/m/04rlf"]
    for split, count in (("train", 9), ("test", 6)):
        folder = tmp_path / "multi" / split
        folder.mkdir(parents=True)
        rows = []
        for i in range(count):
            sf.write(folder / f"{i}.wav", tone(300.0 * 2 ** (i % 3), 1.0, 32000, i + 10 * count), 32000)
            rows.append(json.dumps({"file_name": f"{i}.wav", "labels": [mids[i % 3]]}))
        (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    result = main(
        ["--model_name_or_path", str(checkpoint), "--data_dir", str(tmp_path / "multi"), "--eval_split_name", "test",
         "--label_column_name", "labels", "--class_index_csv", str(audioset_class_index)]
    )  # fmt: skip
    assert result["metric"] == "mAP" and 0.0 <= result["score"] <= 1.0
    assert result["num_classes"] == 527 and result["num_classes_skipped_ap"] == 524 and result["num_examples"] == 6


def test_long_clips_average_their_windows(checkpoint):
    encoder, extractor = load_encoder(str(checkpoint))  # 64-frame windows
    long_clip, short_clip = tone(500.0, 2.0, 32000, 1), tone(900.0, 0.5, 32000, 2)
    together = pooled_embeddings(encoder, extractor, [long_clip, short_clip])
    features = extractor(long_clip, sampling_rate=32000, return_tensors="pt")["input_values"]
    frames = features.shape[1]
    starts = list(range(0, frames - 64, 64)) + [frames - 64]
    with torch.no_grad():
        windows = torch.cat([encoder(features[:, s : s + 64]).pooler_output for s in starts])
        short = encoder(**extractor(short_clip, sampling_rate=32000, return_tensors="pt")).pooler_output[0]
    np.testing.assert_allclose(together[0], windows.mean(dim=0).numpy(), atol=1e-5)
    np.testing.assert_allclose(together[1], short.numpy(), atol=1e-5)


def test_probe_needs_labels(checkpoint, data_dir):
    with pytest.raises(ValueError, match="--label_column_name 'genre' is not a column"):
        main(["--model_name_or_path", str(checkpoint), "--data_dir", str(data_dir), "--eval_split_name", "test",
              "--label_column_name", "genre"])  # fmt: skip


def test_freq_concat_pooling_ignores_padding_and_keeps_band_order(checkpoint):
    encoder, extractor = load_encoder(str(checkpoint))  # 64-frame windows: both clips fit in one
    long_clip, short_clip = tone(500.0, 0.6, 32000, 1), tone(900.0, 0.3, 32000, 2)
    together = pooled_embeddings(encoder, extractor, [long_clip, short_clip], pooling="freq-concat")
    alone = pooled_embeddings(encoder, extractor, [short_clip], pooling="freq-concat")
    assert together.shape == (2, 2 * 8 * 192)
    np.testing.assert_allclose(together[1], alone[0], atol=1e-5)  # the padding of the batch changes nothing
    with torch.no_grad():
        hidden = encoder(**extractor(short_clip, sampling_rate=32000, return_tensors="pt")).last_hidden_state[0]
    steps = hidden.reshape(-1, 8 * 192)  # time-major patches: a step's 8 frequency patches are consecutive
    np.testing.assert_allclose(alone[0, : 8 * 192], steps.mean(dim=0).numpy(), atol=1e-5)
    np.testing.assert_allclose(alone[0, 8 * 192 :], steps.amax(dim=0).numpy(), atol=1e-5)


def test_probe_cli_freq_concat_pooling(checkpoint, data_dir):
    common = ["--model_name_or_path", str(checkpoint), "--data_dir", str(data_dir), "--eval_split_name", "test"]
    result = main(common + ["--pooling", "freq-concat"])
    assert result["pooling"] == "freq-concat" and result["embedding_size"] == 2 * 8 * 192
    assert result["score"] >= 0.8
    with pytest.raises(SystemExit):  # argparse: "argument --pooling: invalid choice: 'max'"
        main(common + ["--pooling", "max"])


def test_config_override_typos_and_empty_splits_are_clear_errors(data_dir):
    common = ["--model_name_or_path", "tiny", "--data_dir", str(data_dir), "--eval_split_name", "test"]
    with pytest.raises(ValueError, match="'num_hiden_layers' is not a MaskSpecConfig field.*'num_hidden_layers'"):
        main(common + ["--config_overrides", "num_hiden_layers=1"])
    with pytest.raises(ValueError, match="training split 'train' has no rows after --max_train_samples 0"):
        main(common + ["--max_train_samples", "0"])
