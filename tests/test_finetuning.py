"""Fine-tuning with Trainer on small audiofolders written here: single/multi-label, recipe, errors, Hub push."""

import json
from pathlib import Path
from unittest import mock

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
from huggingface_hub import HfApi, RepoUrl
from sklearn.metrics import accuracy_score, average_precision_score
from transformers import Trainer, TrainingArguments, pipeline

from maskspec_hf import (
    MaskSpecConfig,
    MaskSpecFeatureExtractor,
    MaskSpecForAudioClassification,
    MaskSpecForPreTraining,
)
from maskspec_hf.cli.finetune import parse_args
from maskspec_hf.data.arguments import DataArguments
from maskspec_hf.data.classification import ClipDataset, MaskSpecDataCollator
from maskspec_hf.data.labels import LabelSpace, build_label_space
from maskspec_hf.data.loading import load_splits
from maskspec_hf.loading import ModelArguments, load_classifier, parse_config_overrides
from maskspec_hf.training.augment import class_balanced_weights, classification_loss, mixup, spec_augment
from maskspec_hf.training.finetuning import FinetuningArguments, finetune
from maskspec_hf.training.optim import layer_decay_parameter_groups


def main(argv: list[str]) -> dict:
    """What `maskspec-finetune` runs, returning the metrics."""
    return finetune(*parse_args(argv))


CLASSES = {"high": 4000.0, "low": 300.0, "mid": 1200.0}
MIDS = ["/m/09x0r", "/m/0jbk", "/m/04rlf"]  # Speech, Animal, Music in AudioSet's class index
COMMON = ["--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true", "--dataloader_pin_memory", "false"]


def tone(freq: float, seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    # Single-label: folder-per-class audiofolder at 16 kHz (resampled to 32 kHz by datasets); 1.0-1.25 s clips.
    for split, count in (("train", 4), ("validation", 2)):
        for name, freq in CLASSES.items():
            folder = root / "single" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                sf.write(
                    folder / f"{name}_{i}.wav", tone(freq * (1 + 0.05 * i), 1.0 + 0.25 * (i % 2), 16000, i), 16000
                )
    # Multi-label: AudioSet-like rows with a list of MIDs, metadata.jsonl per split, 1.5 s clips at 32 kHz.
    for split, count in (("train", 8), ("validation", 4)):
        folder = root / "multi" / split
        folder.mkdir(parents=True)
        rows = []
        for i in range(count):
            labels = [MIDS[i % 3]] + ([MIDS[(i + 1) % 3]] if i % 2 else [])
            sf.write(folder / f"clip_{i}.wav", tone(300.0 * (1 + i % 3), 1.5, 32000, 100 + i), 32000)
            rows.append({"file_name": f"clip_{i}.wav", "labels": labels, "video_id": f"vid{i}"})
        (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def pretrained_folder(tmp_path_factory) -> Path:
    """A tiny pre-training checkpoint (encoder + decoder) with a 1-s window, so 1.25-s eval clips are windowed."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("pretrained")
    config = MaskSpecConfig.from_preset("tiny", num_hidden_layers=2, decoder_num_hidden_layers=1, max_frames=100)
    MaskSpecForPreTraining(config).save_pretrained(folder)
    MaskSpecFeatureExtractor().save_pretrained(folder)
    return folder


def eval_predictions(model_folder: Path, data_dir: Path) -> tuple[np.ndarray, list]:
    """Logits of the saved model on the validation split, decoded the way the fine-tuning script decodes it."""
    model = MaskSpecForAudioClassification.from_pretrained(model_folder).eval()
    extractor = MaskSpecFeatureExtractor.from_pretrained(model_folder)
    split = datasets.load_dataset("audiofolder", data_dir=str(data_dir))["validation"]
    split = split.cast_column("audio", datasets.Audio(sampling_rate=extractor.sampling_rate))
    logits, labels = [], []
    for row in split:
        wave = row["audio"].get_all_samples().data.mean(dim=0).numpy()
        with torch.no_grad():
            logits.append(
                model(**extractor(wave, sampling_rate=extractor.sampling_rate, return_tensors="pt")).logits[0]
            )
        labels.append(row["label"] if "label" in row else row["labels"])
    return torch.stack(logits).numpy(), labels


def test_single_label_finetune_reports_sklearn_accuracy_and_pushes(data_root, pretrained_folder, tmp_path, capfd):
    pushed = {}

    def fake_create_repo(self, repo_id, **kwargs):
        pushed["create_repo"] = (repo_id, kwargs)
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def fake_create_commit(self, repo_id, operations, commit_message, **kwargs):
        files = sorted(op.path_in_repo for op in operations)
        pushed.setdefault("commits", []).append((repo_id, files, commit_message))
        return mock.MagicMock()

    out = tmp_path / "out"
    args = [
        "--model_name_or_path", str(pretrained_folder),
        "--data_dir", str(data_root / "single"),
        "--output_dir", str(out),
        "--do_train", "--do_eval",
        "--max_steps", "3",
        "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "4",
        "--learning_rate", "1e-3",
        "--push_to_hub", "--hub_model_id", "someone/maskspec-tones",
    ] + COMMON  # fmt: skip
    with (
        mock.patch.object(HfApi, "whoami", lambda self: {"name": "someone"}),
        mock.patch.object(HfApi, "create_repo", fake_create_repo),
        mock.patch.object(HfApi, "create_commit", fake_create_commit),
        # HfApi.upload_folder's own single-commit path, short of the network (YAML check, Xet transfer).
        mock.patch.object(HfApi, "_validate_yaml", lambda self, content, **kwargs: None),
        mock.patch("huggingface_hub.hf_api.is_xet_available", lambda: False),
    ):
        metrics = main(args)
    logs = capfd.readouterr()
    # The pre-training decoder is dropped without a per-key report or other loading noise.
    for noise in ("UNEXPECTED", "LOAD REPORT", "not sharded", "decoder."):
        assert noise not in logs.out + logs.err

    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "single_label_classification"
    assert config["id2label"] == {"0": "high", "1": "low", "2": "mid"}
    assert config["architectures"] == ["MaskSpecForAudioClassification"]

    # The reported accuracy is scikit-learn's on the saved model's own predictions.
    logits, labels = eval_predictions(out, data_root / "single")
    expected = accuracy_score(labels, logits.argmax(axis=1))
    report = json.loads((out / "eval_results.json").read_text())
    assert report["eval_accuracy"] == pytest.approx(expected, abs=1e-9)
    assert report["eval_samples"] == 6 and metrics["eval_accuracy"] == report["eval_accuracy"]
    assert np.isfinite(metrics["train_loss"])

    card = (out / "README.md").read_text()
    assert "pipeline_tag: audio-classification" in card and "library_name: transformers" in card
    assert "Results of this run" in card and "not reproduced here" in card
    assert "| mixup_alpha | 0.3 |" in card and "| layer_decay | 0.75 |" in card

    # One commit with exactly the final model files, and a message naming the data and the score.
    assert pushed["create_repo"][0] == "someone/maskspec-tones"
    assert len(pushed["commits"]) == 1
    repo_id, files, message = pushed["commits"][0]
    assert repo_id == "someone/maskspec-tones"
    assert files == [
        "README.md",
        "all_results.json",
        "config.json",
        "configuration_maskspec.py",
        "eval_results.json",
        "feature_extraction_maskspec.py",
        "model.safetensors",
        "modeling_maskspec.py",
        "preprocessor_config.json",
        "train_results.json",
        "trainer_state.json",
    ]
    assert message == f"Fine-tune {pretrained_folder} on single: eval accuracy {expected:.4f}"

    # The folder works in the pipeline, with labels from the data.
    results = pipeline("audio-classification", model=str(out))(tone(300.0, 1.0, 32000, 0), top_k=3)
    assert {r["label"] for r in results} == set(CLASSES)


def test_multi_label_finetune_with_class_index_reports_sklearn_map(data_root, audioset_class_index, tmp_path):
    out = tmp_path / "out"
    args = [
        "--model_name_or_path", "tiny",
        "--config_overrides", "num_hidden_layers=1,max_frames=100",
        "--data_dir", str(data_root / "multi"),
        "--label_column_name", "labels",
        "--class_index_csv", str(audioset_class_index),
        "--output_dir", str(out),
        "--do_train", "--do_eval",
        "--max_steps", "2",
        "--per_device_train_batch_size", "4",
    ] + COMMON  # fmt: skip
    metrics = main(args)
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert (
        len(config["id2label"]) == 527 and config["id2label"]["0"] == "Speech" and config["id2label"]["137"] == "Music"
    )

    logits, labels = eval_predictions(out, data_root / "multi")
    index = {mid: i for i, mid in enumerate(["/m/09x0r", "/m/0jbk", "/m/04rlf"])}
    columns = [0, 72, 137]  # the index rows of those MIDs
    targets = np.zeros((len(labels), 527))
    for row, mids in enumerate(labels):
        for mid in mids:
            targets[row, columns[index[mid]]] = 1
    scores = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = np.mean([average_precision_score(targets[:, k], scores[:, k]) for k in columns])
    report = json.loads((out / "eval_results.json").read_text())
    assert report["eval_mAP"] == pytest.approx(expected, abs=1e-9)
    assert report["eval_num_examples"] == 4 and report["eval_num_classes"] == 527
    assert report["eval_num_classes_skipped_ap"] == 524
    assert metrics["eval_mAP"] == report["eval_mAP"]
    card = (out / "README.md").read_text()
    assert "| balanced_sampling | True |" in card and "| label_smoothing | 0 |" in card  # multi-label defaults

    classifier = pipeline("audio-classification", model=str(out))
    results = classifier(tone(300.0, 1.0, 32000, 0), top_k=527)
    assert len(results) == 527 and sum(r["score"] for r in results) > 1.5  # sigmoid, not softmax


def test_bf16_training_without_augmentation(data_root, tmp_path):
    out = tmp_path / "out"
    args = [
        "--model_name_or_path", "tiny",
        "--config_overrides", "num_hidden_layers=1,max_frames=100",
        "--data_dir", str(data_root / "single"),
        "--output_dir", str(out),
        "--do_train",
        "--max_steps", "1",
        "--per_device_train_batch_size", "4",
        "--bf16", "--use_cpu",
        "--no_augment",
    ] + COMMON  # fmt: skip
    metrics = main(args)
    assert np.isfinite(metrics["train_loss"])
    config = json.loads((out / "config.json").read_text())
    assert config["patchout_ratio"] == 0.0
    card = (out / "README.md").read_text()
    assert "| mixup_alpha | 0 |" in card and "| bf16 | True |" in card and "| random_crop | False |" in card
    classifier = pipeline("audio-classification", model=str(out), dtype=torch.bfloat16)
    assert classifier.model.dtype == torch.bfloat16
    assert len(classifier(tone(300.0, 1.0, 32000, 0), top_k=2)) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--label_column_name", "genre"], "--label_column_name 'genre' is not a column"),
        (["--audio_column_name", "sound"], "--audio_column_name 'sound' is not a column"),
        (["--eval_split_name", "dev"], "--eval_split_name 'dev' is not a split"),
    ],
)
def test_bad_columns_and_splits_give_clear_errors(data_root, tmp_path, extra, message):
    args = ["--model_name_or_path", "tiny", "--data_dir", str(data_root / "single"), "--output_dir", str(tmp_path)]
    with pytest.raises(ValueError, match=message) as error:
        main(args + ["--do_train", "--do_eval"] + extra + COMMON)
    if "column" in message:
        assert "available columns: ['audio', 'label']" in str(error.value)
    else:
        assert "available splits: ['train', 'validation']" in str(error.value)


def test_labels_not_in_the_class_index_are_an_error(data_root, tmp_path):
    index = tmp_path / "index.csv"
    index.write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/0jbk,"Animal"\n')
    data_args = DataArguments(
        data_dir=str(data_root / "multi"), label_column_name="labels", class_index_csv=str(index)
    )
    splits = dict(zip(("train", "eval"), load_splits(data_args)))
    with pytest.raises(
        ValueError, match=r"1 label value\(s\) of column 'labels' are not in the class index .*'/m/04rlf'"
    ):
        build_label_space(splits, "labels", str(index))
    with pytest.raises(ValueError, match="columns index,mid,display_name"):
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
        build_label_space(splits, "labels", str(tmp_path / "bad.csv"))


def test_label_spaces_from_data(data_root):
    single = dict(zip(("train", "eval"), load_splits(DataArguments(data_dir=str(data_root / "single")))))
    space = build_label_space(single, "label")
    assert space.names == ["high", "low", "mid"] and not space.multi_label and space.source == "ClassLabel"
    multi = dict(zip(("train", "eval"), load_splits(DataArguments(data_dir=str(data_root / "multi"),
                                                                  label_column_name="labels"))))  # fmt: skip
    space = build_label_space(multi, "labels")
    assert space.multi_label and space.problem_type == "multi_label_classification"
    assert space.names == sorted(MIDS)  # vocabulary built from the data
    np.testing.assert_array_equal(space.encode(["/m/0jbk", "/m/04rlf"]), [1, 0, 1])  # sorted: 04rlf, 09x0r, 0jbk
    strings = {"train": datasets.Dataset.from_dict({"audio": ["a", "b"], "label": ["dog", "cat"]})}
    assert build_label_space(strings, "label").lookup == {"cat": 0, "dog": 1}


def test_pretraining_checkpoint_loads_encoder_and_new_head(pretrained_folder):
    space = LabelSpace(names=["a", "b"], multi_label=False, lookup={"a": 0, "b": 1})
    model, extractor, origin = load_classifier(
        ModelArguments(model_name_or_path=str(pretrained_folder)), space, patchout_ratio=0.4
    )
    reference = MaskSpecForPreTraining.from_pretrained(pretrained_folder)
    for name, tensor in reference.maskspec.state_dict().items():
        torch.testing.assert_close(model.maskspec.state_dict()[name], tensor)
    assert model.config.num_labels == 2 and model.config.patchout_ratio == 0.4 and model.config.max_frames == 100
    assert "new classifier/fc_norm" in origin and "dropped the checkpoint's decoder" in origin
    assert isinstance(extractor, MaskSpecFeatureExtractor)
    # A classification checkpoint with another label count needs --ignore_mismatched_sizes.
    model.save_pretrained(pretrained_folder.parent / "two-labels")
    three = LabelSpace(names=["a", "b", "c"], multi_label=False, lookup={"a": 0, "b": 1, "c": 2})
    with pytest.raises(ValueError, match="--ignore_mismatched_sizes"):
        load_classifier(ModelArguments(model_name_or_path=str(pretrained_folder.parent / "two-labels")), three)


def test_spec_augment_masks_within_bounds_and_scales_with_length():
    torch.manual_seed(0)
    x = torch.randn(64, 300, 128)
    mask = torch.ones(64, 300, dtype=torch.long)
    mask[:, 100:] = 0  # 100 real frames: time masks of at most round(192 * 100 / 1000) = 19 frames
    out = spec_augment(x, mask, freq_mask_bins=48, time_mask_frames=192, reference_frames=1000)
    masked = out == 0
    freq_masked = masked.all(dim=1).sum(dim=1)  # bins zeroed at every frame
    time_masked = masked[:, :100].all(dim=2).sum(dim=1)  # real frames zeroed at every bin
    assert freq_masked.max() <= 48 and freq_masked.max() > 0
    assert time_masked.max() <= 19 and time_masked.max() > 0
    assert not masked[:, 100:].all(dim=2).any()  # never in the padding
    untouched = spec_augment(x, mask, freq_mask_bins=0, time_mask_frames=0)
    torch.testing.assert_close(untouched, x)


def test_mixup_mixes_inputs_targets_and_masks():
    torch.manual_seed(0)
    x = torch.randn(8, 50, 128)
    mask = torch.ones(8, 50, dtype=torch.long)
    mask[0, 25:] = 0
    targets = torch.nn.functional.one_hot(torch.arange(8) % 4, 4).float()
    mixed, mixed_mask, mixed_targets = mixup(x, mask, targets, alpha=0.3)
    torch.testing.assert_close(mixed_targets.sum(dim=1), torch.ones(8))
    assert (mixed_targets.max(dim=1).values >= 0.5 - 1e-6).all()  # λ = max(λ, 1 - λ)
    assert mixed.shape == x.shape and mixed_mask.min() >= 0 and (mixed_mask >= mask).all()


def test_loss_with_label_smoothing_and_soft_targets():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 2, 1, 1])
    smooth = classification_loss(logits, labels, "single_label_classification", 0.1)
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    torch.testing.assert_close(smooth, expected)
    soft = classification_loss(logits, torch.nn.functional.one_hot(labels, 3).float(), "single_label_classification")
    torch.testing.assert_close(soft, torch.nn.functional.cross_entropy(logits, labels))
    multi = classification_loss(
        logits, torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]]), "multi_label_classification"
    )
    assert multi.ndim == 0 and multi > 0


def test_layer_decay_parameter_groups():
    model = MaskSpecForAudioClassification(MaskSpecConfig.from_preset("tiny", num_hidden_layers=3, num_labels=2))
    groups = layer_decay_parameter_groups(model, learning_rate=1e-3, weight_decay=0.05, layer_decay=0.5)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_param[id(named["maskspec.patch_embeddings.projection.weight"])]["lr"] == pytest.approx(1e-3 * 0.5**4)
    assert by_param[id(named["maskspec.layers.0.mlp.fc1.weight"])]["lr"] == pytest.approx(1e-3 * 0.5**3)
    assert by_param[id(named["maskspec.layers.2.mlp.fc1.weight"])]["lr"] == pytest.approx(1e-3 * 0.5)
    assert by_param[id(named["classifier.weight"])]["lr"] == pytest.approx(1e-3)
    assert by_param[id(named["classifier.bias"])]["weight_decay"] == 0.0
    assert by_param[id(named["classifier.weight"])]["weight_decay"] == 0.05
    assert sum(len(g["params"]) for g in groups) == len(named)


def test_class_balanced_weights_favour_rare_classes():
    targets = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [1, 1]])
    weights = class_balanced_weights(targets, offset=0)
    assert weights[3] > weights[0]  # the rare class's clip is drawn more often
    assert weights[4] == pytest.approx(weights[0] + weights[3])


def test_recipe_switches_and_config_overrides():
    off = FinetuningArguments(augment=False)
    assert (off.mixup_alpha, off.freq_mask_bins, off.time_mask_frames, off.patchout_ratio, off.random_crop) == (
        0.0, 0, 0, 0.0, False
    )  # fmt: skip
    with pytest.raises(ValueError, match="--layer_decay"):
        FinetuningArguments(layer_decay=0.0)
    assert parse_config_overrides("num_hidden_layers=2, hidden_act=gelu,qkv_bias=false") == {
        "num_hidden_layers": 2,
        "hidden_act": "gelu",
        "qkv_bias": False,
    }


def test_runs_like_transformers_run_audio_classification(tmp_path):
    """The steps of transformers' run_audio_classification.py: Auto classes, freeze_feature_encoder, the feature
    extractor's `model_input_names[0]` only, and Trainer's default collator (the feature extractor's `pad`)."""
    folder = tmp_path / "base"
    MaskSpecForPreTraining(
        MaskSpecConfig.from_preset("tiny", num_hidden_layers=1, decoder_num_hidden_layers=1)
    ).save_pretrained(folder)
    MaskSpecFeatureExtractor().save_pretrained(folder)
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

    extractor = AutoFeatureExtractor.from_pretrained(folder)
    config = AutoConfig.from_pretrained(
        folder,
        num_labels=2,
        label2id={"a": "0", "b": "1"},
        id2label={"0": "a", "1": "b"},
        finetuning_task="audio-classification",
    )
    model = AutoModelForAudioClassification.from_pretrained(folder, config=config)
    model.freeze_feature_encoder()
    assert not any(p.requires_grad for p in model.maskspec.patch_embeddings.parameters())
    name = extractor.model_input_names[0]
    assert name == model.main_input_name == "input_values" and extractor.return_attention_mask

    waves = [tone(300.0 * (1 + i % 2), 0.5 + 0.25 * (i % 3), 32000, i) for i in range(6)]
    data = datasets.Dataset.from_dict({"audio": list(range(6)), "label": [i % 2 for i in range(6)]})

    def transform(batch):
        inputs = extractor([waves[i] for i in batch["audio"]], sampling_rate=extractor.sampling_rate)
        return {name: inputs.get(name), "labels": list(batch["label"])}

    data.set_transform(transform)
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=3, report_to="none",
        remove_unused_columns=False, save_strategy="no", disable_tqdm=True, dataloader_pin_memory=False,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=extractor)
    assert np.isfinite(trainer.train().training_loss)


def test_collator_pads_short_clips_and_stacks_labels():
    extractor = MaskSpecFeatureExtractor()
    collator = MaskSpecDataCollator(extractor)
    batch = collator(
        [{"audio": np.zeros(100, np.float32) + 0.1, "labels": np.array([1, 0], np.float32)},
         {"audio": tone(300.0, 0.5, 32000, 0), "labels": np.array([0, 1], np.float32)}]
    )  # fmt: skip
    assert batch["input_values"].shape == (2, extractor.frames_for_samples(16000), 128)
    assert batch["labels"].dtype == torch.float32
    assert batch["attention_mask"][0].sum() == extractor.frames_for_samples(extractor.min_num_samples)


def test_training_clips_are_cropped_at_random_and_eval_keeps_whole_clips():
    space = LabelSpace(names=["a", "b"], multi_label=False, lookup={"a": 0, "b": 1})
    ramp = np.linspace(-0.9, 0.9, 1000, dtype=np.float32)  # a sample's value tells its position
    rows = datasets.Dataset.from_dict(
        {"audio": [{"array": ramp, "sampling_rate": 32000}] * 20, "label": ["b"] * 20}
    ).cast_column("audio", datasets.Audio())
    train = ClipDataset(rows, "audio", "label", space, 32000, max_samples=300, random_crop=True)
    train = [train[i] for i in range(len(train))]
    assert all(len(c["audio"]) == 300 for c in train) and [c["labels"] for c in train] == [1] * 20
    assert len({round(float(c["audio"][0]), 2) for c in train}) > 1  # different offsets
    start = ClipDataset(rows, "audio", "label", space, 32000, max_samples=300, random_crop=False)
    assert all(abs(start[i]["audio"][0] + 0.9) < 1e-3 and len(start[i]["audio"]) == 300 for i in range(len(start)))
    whole = ClipDataset(rows, "audio", "label", space, 32000)
    assert all(len(whole[i]["audio"]) == 1000 for i in range(len(whole)))


def test_clips_are_named_by_the_id_column_and_short_ones_skipped_with_min_length():
    space = LabelSpace(names=["a", "b"], multi_label=False, lookup={"a": 0, "b": 1})
    waves = [np.full(n, 0.1, np.float32) for n in (100, 1000)]
    rows = datasets.Dataset.from_dict(
        {"audio": [{"array": w, "sampling_rate": 32000} for w in waves], "label": ["a", "b"], "clip": ["c0", "c1"]}
    ).cast_column("audio", datasets.Audio())
    clips = ClipDataset(rows, "audio", "label", space, 32000, id_column="clip", min_samples=500)
    assert clips[0] == {"audio": None, "clip": "c0", "skipped": "too_short", "error": clips[0]["error"]}
    assert clips[1]["clip"] == "c1" and len(clips[1]["audio"]) == 1000 and clips[1]["labels"] == 1
    assert ClipDataset(rows, "audio", "label", space, 32000)[0]["audio"] is not None  # short clips are padded later
    with pytest.raises(ValueError, match="--id_column_name 'vid' is not a column"):
        ClipDataset(rows, "audio", "label", space, 32000, id_column="vid")


def test_config_override_typos_are_errors(data_root, tmp_path):
    args = ["--model_name_or_path", "tiny", "--data_dir", str(data_root / "single"), "--output_dir", str(tmp_path)]
    with pytest.raises(ValueError, match="'num_hiden_layers' is not a MaskSpecConfig field.*'num_hidden_layers'"):
        main(args + ["--config_overrides", "num_hiden_layers=1", "--do_train", "--max_steps", "1"] + COMMON)
    assert not (tmp_path / "model.safetensors").exists()


def test_push_to_hub_fails_before_training_when_the_hub_cannot_be_reached(data_root, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):  # no token anywhere (environment or token file)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    out = tmp_path / "out"
    args = [
        "--model_name_or_path", "tiny", "--config_overrides", "num_hidden_layers=1,max_frames=100",
        "--data_dir", str(data_root / "single"), "--output_dir", str(out), "--do_train", "--max_steps", "1",
        "--push_to_hub", "--hub_model_id", "someone/maskspec-tones",
    ] + COMMON  # fmt: skip
    with pytest.raises(ValueError, match="--hub_model_id someone/maskspec-tones: no Hub token; pass --hub_token"):
        main(args)
    with pytest.raises(ValueError, match="--hub_model_id someone/maskspec-tones: HF_HUB_OFFLINE is set"):
        main(args + ["--hub_token", "hf_not_a_real_token"])
    assert not (out / "model.safetensors").exists()  # nothing was trained

    # Logged in, but the repo cannot be created: also before training, naming the repo.
    def forbidden(self, repo_id, **kwargs):
        raise PermissionError(f"403 Forbidden: you cannot write to {repo_id}")

    with (
        mock.patch.object(HfApi, "whoami", lambda self: {"name": "me"}),
        mock.patch.object(HfApi, "create_repo", forbidden),
    ):
        with pytest.raises(ValueError, match="cannot create or write to the repo someone/maskspec-tones as me"):
            main(args)
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--max_train_samples", "0"], "training split 'train' has no rows after --max_train_samples 0"),
        (["--max_eval_samples", "0"], "evaluation split 'validation' has no rows after --max_eval_samples 0"),
    ],
)
def test_empty_splits_are_named(data_root, tmp_path, extra, message):
    args = ["--model_name_or_path", "tiny", "--data_dir", str(data_root / "single"), "--output_dir", str(tmp_path)]
    with pytest.raises(ValueError, match=message):
        main(args + ["--do_train", "--do_eval"] + extra + COMMON)


def test_trust_remote_code_is_not_a_silent_no_op():
    # maskspec-finetune always runs the installed package's classes, never a folder's code files: a flag that would
    # change nothing is refused rather than parsed and ignored.
    with pytest.raises(ValueError, match="trust_remote_code"):
        parse_args(["--model_name_or_path", "tiny", "--output_dir", "x", "--trust_remote_code", "True"])
