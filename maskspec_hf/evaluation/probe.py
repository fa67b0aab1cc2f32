# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Linear probe: the standard way to judge a pre-trained representation.

The encoder is frozen; every clip of a labeled train and test split is turned into one pooled embedding (the mean
of the encoder's patch outputs; clips longer than the model window are cut into consecutive `config.max_frames`
windows whose embeddings are averaged); a linear classifier (standardized features, logistic regression; one per
class for multi-label data) is fitted on the train embeddings and scored on the test ones: accuracy (single-label)
or AudioSet mAP/mAUC/d′ (multi-label), with the bundled offline metrics.

Any `from_pretrained` source works (pre-training, classification or encoder checkpoint, folder or Hub id) and so do
the preset names "tiny"/"small"/"base" (random weights). `--random_init` keeps the source's architecture and draws
fresh weights, so a pre-trained encoder and its random baseline differ by one flag:

    maskspec-probe --model_name_or_path my-pretrained --data_dir my_audiofolder --eval_split_name test
    maskspec-probe --model_name_or_path my-pretrained --data_dir my_audiofolder --eval_split_name test --random_init
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch

from ..audio import ClipError, check_waveform, decode_audio
from ..data.arguments import DataArguments
from ..data.clips import clip_name
from ..data.labels import LabelSpace, build_label_space
from ..data.loading import default_id_column, load_splits
from ..feature_extraction_maskspec import MaskSpecFeatureExtractor
from ..loading import ModelArguments, hub_options, is_preset_name, load_encoder
from ..modeling_maskspec import MaskSpecModel
from .embeddings import encode_windows
from .metrics import accuracy, audioset_map


logger = logging.getLogger(__name__)

POOLINGS = ("mean", "freq-concat")


def pool_patch_outputs(output, num_freq_patches: int, pooling: str = "mean") -> torch.Tensor:
    """One embedding per clip from a `MaskSpecModel` output (no masking): `mean` is `pooler_output`; `freq-concat`
    concatenates the `num_freq_patches` patches of every time step (patches are time-major) and takes the mean and the
    max over the time steps that are not padding, `[batch, 2 * num_freq_patches * hidden]`."""
    if pooling == "mean":
        return output.pooler_output
    if pooling != "freq-concat":
        raise ValueError(f"Unknown pooling {pooling!r}; choose one of {list(POOLINGS)}.")
    hidden = output.last_hidden_state
    steps = hidden.reshape(hidden.shape[0], -1, num_freq_patches * hidden.shape[-1])
    if output.patch_attention_mask is None:
        return torch.cat([steps.mean(dim=1), steps.amax(dim=1)], dim=-1)
    valid = output.patch_attention_mask.reshape(hidden.shape[0], -1, num_freq_patches).any(dim=-1)[:, :, None]
    mean = (steps * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
    peak = steps.masked_fill(~valid, float("-inf")).amax(dim=1)
    return torch.cat([mean, peak], dim=-1)


@dataclass
class ProbeArguments:
    """The probe's own options; the encoder comes from `ModelArguments`, the labeled splits from `DataArguments`."""

    random_init: bool = field(
        default=False, metadata={"help": "Same architecture as the source, random weights: the baseline to beat."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the random initialization and the classifier."})
    pooling: str = field(
        default="mean",
        metadata={
            "help": "How patch outputs become one embedding: 'mean' (the classifier's pooling: mean over all "
            "patches) or 'freq-concat' (MSM-MAE's: the frequency patches of each time step concatenated, then mean "
            "and max over time; keeps band position, usually the stronger frozen readout).",
            "choices": list(POOLINGS),
        },
    )
    batch_size: int = field(default=16, metadata={"help": "Clips per encoder call."})
    device: str = field(default="cpu", metadata={"help": "Device of the encoder (cpu, cuda, ...)."})
    C: float = field(default=1.0, metadata={"help": "Inverse L2 regularization strength of the logistic regression."})
    max_iter: int = field(default=1000, metadata={"help": "Iterations of the logistic regression solver."})
    output_file: str | None = field(default=None, metadata={"help": "Write the results to this JSON file."})


@torch.no_grad()
def pooled_embeddings(
    encoder: MaskSpecModel,
    feature_extractor: MaskSpecFeatureExtractor,
    waves: list[np.ndarray],
    batch_size: int = 16,
    pooling: str = "mean",
) -> np.ndarray:
    """Pooled encoder embeddings `[clips, size]` of mono waveforms at the feature extractor's rate (see
    `pool_patch_outputs` for `pooling`).

    A clip longer than `config.max_frames` frames is cut into consecutive windows, the last one flush with its end
    (`embeddings.encode_windows`), whose pooled embeddings are averaged; padding is masked, so a clip's embedding
    does not depend on the batch. Clips shorter than one patch are zero-padded to it.
    """
    minimum = feature_extractor.min_num_samples
    num_freq_patches = encoder.config.num_freq_patches
    out = []
    for first in range(0, len(waves), batch_size):
        batch = [
            w if len(w) >= minimum else np.pad(w, (0, minimum - len(w))) for w in waves[first : first + batch_size]
        ]
        features = feature_extractor(
            batch, sampling_rate=feature_extractor.sampling_rate, padding="longest", return_tensors="pt"
        )
        windows = encode_windows(
            encoder,
            features["input_values"],
            features["attention_mask"],
            readout=lambda output: pool_patch_outputs(output, num_freq_patches, pooling),
            batch_size=batch_size,
        )
        out.append(torch.stack([torch.stack([v for _, _, v in clip]).mean(dim=0) for clip in windows]).numpy())
    return np.concatenate(out)


def embed_split(
    dataset: datasets.Dataset,
    encoder: MaskSpecModel,
    feature_extractor: MaskSpecFeatureExtractor,
    audio_column: str,
    label_column: str,
    label_space: LabelSpace,
    batch_size: int = 16,
    max_samples: int | None = None,
    pooling: str = "mean",
    skipped: list | None = None,
    split: str = "train",
    id_column: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, targets) of one split, decoded (and resampled) to the feature extractor's rate clip by clip.

    A clip that cannot be used (undecodable, empty, NaN/Inf samples) is left out and logged; with `skipped`, a
    `{"split", "id", "reason", "error"}` entry is appended to it, naming the clip by `id_column` (default: a column
    such as `video_id` if there is one), else by its file. Raises a `ValueError` when no clip is left.
    """
    others = [c for c in dataset.column_names if c not in (audio_column, label_column)]
    id_column = id_column or default_id_column(others)
    columns = [audio_column, label_column] + ([id_column] if id_column else [])
    # Left encoded, so that each clip is decoded (and can fail) on its own.
    dataset = dataset.select_columns(columns).cast_column(audio_column, datasets.Audio(decode=False))
    skipped = [] if skipped is None else skipped
    first_skip = len(skipped)
    embeddings, targets, waves = [], [], []
    for index, row in enumerate(dataset):
        try:
            wave = decode_audio(row[audio_column], feature_extractor.sampling_rate)
            check_waveform(wave, 1)  # short clips are padded to one patch
        except ClipError as error:
            name = clip_name(row[audio_column], row.get(id_column), f"{split} row {index}")
            logger.warning(f"Skipping {split} clip {name}: {error.reason} ({error})")
            skipped.append({"split": split, "id": name, "reason": error.reason, "error": str(error)})
            continue
        waves.append(wave[:max_samples] if max_samples else wave)
        targets.append(label_space.encode(row[label_column]))
        if len(waves) == batch_size:
            embeddings.append(pooled_embeddings(encoder, feature_extractor, waves, batch_size, pooling))
            waves = []
    if waves:
        embeddings.append(pooled_embeddings(encoder, feature_extractor, waves, batch_size, pooling))
    if not embeddings:
        example = skipped[first_skip] if len(skipped) > first_skip else {"id": "?", "reason": "?", "error": "?"}
        raise ValueError(
            f"None of the {len(dataset)} clips of the {split} split can be used (e.g. {example['id']}: "
            f"{example['reason']}, {example['error']})."
        )
    return np.concatenate(embeddings), np.stack(targets) if label_space.multi_label else np.asarray(targets)


def fit_linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    multi_label: bool,
    C: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
) -> dict:
    """Fit standardization + logistic regression on train embeddings; score the test ones with the bundled metrics."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    linear = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    classifier = make_pipeline(StandardScaler(), OneVsRestClassifier(linear) if multi_label else linear)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
        classifier.fit(train_x, train_y)
    if multi_label:
        return audioset_map(classifier.decision_function(test_x), test_y)
    return accuracy(classifier.predict(test_x), test_y)


def probe(model_args: ModelArguments, data_args: DataArguments, probe_args: ProbeArguments) -> dict:
    """Linear probe of the encoder of `model_args` on the train and eval splits of `data_args`; returns the results
    (also written to `probe_args.output_file` when given) and prints a one-line summary."""
    if not model_args.model_name_or_path:
        raise ValueError("--model_name_or_path is required: a MaskSpec folder, a Hub id or a preset name.")
    if data_args.label_column_name is None:
        raise ValueError("--label_column_name is required for the linear probe.")
    if probe_args.pooling not in POOLINGS:
        raise ValueError(f"--pooling must be one of {list(POOLINGS)}, got {probe_args.pooling!r}.")
    train, evaluation = load_splits(data_args, model_args.cache_dir, model_args.token, seed=probe_args.seed)
    label_space = build_label_space(
        {"train": train, "eval": evaluation}, data_args.label_column_name, data_args.class_index_csv
    )
    encoder, feature_extractor = load_encoder(
        model_args.model_name_or_path,
        random_init=probe_args.random_init,
        seed=probe_args.seed,
        config_overrides=model_args.config_overrides,
        config_name=model_args.config_name,
        feature_extractor_name=model_args.feature_extractor_name,
        attn_implementation=model_args.attn_implementation,
        **hub_options(model_args),
    )
    encoder.to(probe_args.device).requires_grad_(False)
    max_samples = (
        int(data_args.max_length_seconds * feature_extractor.sampling_rate) if data_args.max_length_seconds else None
    )
    skipped: list[dict] = []
    (train_x, train_y), (test_x, test_y) = (
        embed_split(
            dataset,
            encoder,
            feature_extractor,
            data_args.audio_column_name,
            data_args.label_column_name,
            label_space,
            probe_args.batch_size,
            max_samples,
            probe_args.pooling,
            skipped=skipped,
            split=name,
            id_column=data_args.id_column_name,
        )
        for dataset, name in ((train, data_args.train_split_name), (evaluation, data_args.eval_split_name))
    )
    if not label_space.multi_label and len(np.unique(train_y)) < 2:
        raise ValueError("The training split has a single class: a linear probe needs at least two.")
    scores = fit_linear_probe(
        train_x,
        train_y,
        test_x,
        test_y,
        label_space.multi_label,
        C=probe_args.C,
        max_iter=probe_args.max_iter,
        seed=probe_args.seed,
    )
    result = _results(model_args, data_args, probe_args, scores, label_space, train_x, test_x, skipped)
    _report(result, skipped)
    if probe_args.output_file:
        path = Path(probe_args.output_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _results(model_args, data_args, probe_args, scores, label_space, train_x, test_x, skipped) -> dict:
    metric = "mAP" if label_space.multi_label else "accuracy"
    source = model_args.model_name_or_path
    return {
        "model": source,
        "weights": "random init" if probe_args.random_init or is_preset_name(source) else "pre-trained",
        "metric": metric,
        "score": scores[metric],
        **{k: v for k, v in scores.items() if k != metric},
        "pooling": probe_args.pooling,
        "embedding_size": int(train_x.shape[1]),
        "num_classes": label_space.num_labels,
        "train_examples": int(len(train_x)),
        "test_examples": int(len(test_x)),
        "train_split": data_args.train_split_name,
        "test_split": data_args.eval_split_name,
        "classifier": f"StandardScaler + LogisticRegression(C={probe_args.C})"
        + (" one-vs-rest" if label_space.multi_label else ""),
        "seed": probe_args.seed,
        "clips_skipped": len(skipped),
        "skipped_clips": skipped,
    }


def _report(result: dict, skipped: list[dict]) -> None:
    if skipped:
        names = ", ".join(f"{clip['id']} ({clip['reason']})" for clip in skipped)
        print(f"Skipped {len(skipped)} clips that cannot be used: {names}")
    print(
        f"Linear probe of {result['model']} ({result['weights']}): {result['metric']} {result['score']:.4f} on "
        f"{result['test_examples']} test clips ({result['train_examples']} train, {result['num_classes']} classes, "
        f"{result['embedding_size']}-d embeddings)"
    )


__all__ = [
    "POOLINGS",
    "ProbeArguments",
    "embed_split",
    "fit_linear_probe",
    "pool_patch_outputs",
    "pooled_embeddings",
    "probe",
]
