# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Model cards (README.md with Hub metadata) for MaskSpec checkpoints, pre-trained or fine-tuned.

`render_model_card(config, task=..., hyperparameters=..., results=..., datasets=...)` returns the text of a README.md:
a YAML header the Hub reads (library_name, license, tags, datasets, pipeline_tag, base_model, and a `model-index`
for classification results on Hub datasets), then what the model is, how to load it, the real training
hyperparameters and results of this run, and the paper's results, clearly labelled as reported by the paper and not
reproduced here. `write_model_card(folder, ...)` writes it to `folder/README.md`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData


TASKS = ("pretraining", "audio-classification")

# Results reported by the MaskSpec paper (Chong et al., 2022, arXiv:2204.12768), not reproduced by this package.
PAPER_RESULTS: tuple[tuple[str, str, str, str], ...] = (
    # (model size, task, metric, score)
    ("Base", "AudioSet-2M (AS-2M)", "mAP", "0.471"),
    ("Base", "AudioSet-20K (AS-20K)", "mAP", "0.323"),
    ("Base", "ESC-50", "accuracy", "0.896 (0.982 with AudioSet fine-tuning first)"),
    ("Base", "Speech Commands V2 (SCV2)", "accuracy", "0.977"),
    ("Base", "OpenMIC-2018", "mAP", "0.853"),
    ("Base", "DCASE2019", "accuracy", "0.823"),
    ("Small", "AudioSet-20K (AS-20K)", "mAP", "0.289"),
    ("Small", "ESC-50", "accuracy", "0.907"),
    ("Tiny", "ESC-50", "accuracy", "0.822"),
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]")


def is_local_path(value) -> bool:
    """Whether `value` names something on this machine (an absolute, home or explicitly relative path, or an existing
    file or folder) rather than a Hub id."""
    text = str(value)
    return (
        os.path.isabs(text)
        or text.startswith(("~", "./", "../", ".\\", "..\\"))
        or bool(_WINDOWS_PATH.match(text))
        or Path(text).exists()
    )


def public_name(value, local: bool | None = None) -> str:
    """How a model card may name `value`: a Hub id as it is; a local path (`local`: None to tell with
    `is_local_path`) by its last component only, since a card is meant for the Hub, where a local path tells nothing
    but the author's directory layout."""
    text = str(value)
    if not (is_local_path(text) if local is None else local):
        return text
    name = re.split(r"[\\/]", text.rstrip("/\\"))[-1]
    if name in ("", ".", "..", "~"):
        name = Path(text).expanduser().resolve().name
    return name or "a local folder"


def _without_local_paths(text: str) -> str:
    """`text` with every word that is a local path (see `is_local_path`) cut to its last component."""

    def shorten(match: re.Match) -> str:
        lead, word, trail = match.group(1), match.group(2), match.group(3)
        if ("/" in word or "\\" in word) and is_local_path(word):
            word = public_name(word, local=True)
        return lead + word + trail

    return re.sub(r"([(`'\"]*)([^\s(`'\"]+?)([)`'\",;:.]*)(?=\s|$)", shorten, text)


def _size_name(config) -> str:
    from .configuration_maskspec import MASKSPEC_PRESETS

    for name, shape in MASKSPEC_PRESETS.items():
        if all(getattr(config, key, None) == value for key, value in shape.items()):
            if getattr(config, "num_hidden_layers", None) == 12:
                return f"MaskSpec-{name.capitalize()}"
            return f"MaskSpec-{name.capitalize()} shape, {config.num_hidden_layers} blocks"
    return f"custom MaskSpec ({config.hidden_size} wide, {config.num_hidden_layers} blocks)"


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_format_value(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _hub_datasets(datasets: Sequence[str]) -> list[str]:
    """Only Hub dataset ids go into the YAML header; local folders and descriptions stay in the text."""
    ids = []
    for description in datasets:
        name = description.split()[0] if description.split() else ""
        if "/" in name and _HUB_ID.match(name) and not Path(name).exists() and name not in ids:
            ids.append(name)
    return ids


def paper_results_table() -> str:
    return _table(("model", "task", "metric", "score"), PAPER_RESULTS)


def render_model_card(
    config,
    *,
    task: str = "pretraining",
    hyperparameters: Mapping | None = None,
    results: Mapping | None = None,
    datasets: Sequence[str] = (),
    base_model: str | None = None,
    extra_notes: str | None = None,
    model_name: str | None = None,
    eval_dataset: str | None = None,
    eval_dataset_config: str | None = None,
    eval_split: str | None = None,
    figure: str | None = None,
) -> str:
    """Text of a README.md model card for a MaskSpec checkpoint.

    Args:
        config: the model's `MaskSpecConfig` (its size, patch and label set are described).
        task: `"pretraining"` (an encoder + decoder from masked spectrogram pre-training) or `"audio-classification"`.
        hyperparameters: the run's real training settings, shown as a table.
        results: the run's results (e.g. `{"final_loss": 0.61}` or `{"accuracy": 0.83}`), shown as a table; numeric
            classification results on a Hub `eval_dataset` also go into the Hub `model-index`.
        datasets: training data: Hub ids (listed in the metadata) and/or free-text descriptions.
        base_model: the checkpoint this one was fine-tuned from (Hub id or path).
        extra_notes: a paragraph added at the end of the card (markdown).
        model_name: the model's name in the title and `model-index` (default: from the size).
        eval_dataset / eval_dataset_config / eval_split: where `results` were measured (for `model-index`).
        figure: file name of an image in the same folder (e.g. the reconstruction figure), shown in the card.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    results = dict(results or {})
    datasets = [_without_local_paths(str(d)) for d in datasets]  # a card is published: no local paths
    size = _size_name(config)
    name = model_name or (f"{size} (pre-trained)" if task == "pretraining" else f"{size} audio classifier")
    eval_results = None
    if task == "audio-classification":
        eval_results = _eval_results(results, eval_dataset, eval_dataset_config, eval_split)
    parts = [
        _metadata_section(task, name, datasets, base_model, eval_results),
        f"# {name}",
        _description_section(config, task, base_model),
        _architecture_section(config, task, size),
        _figure_section(figure),
        _usage_section(task),
        _training_data_section(datasets),
        _hyperparameters_section(hyperparameters),
        _results_section(results, eval_dataset, eval_split),
        _paper_results_section(),
        extra_notes.strip() if extra_notes else None,
        CITATION,
    ]
    return "\n\n".join(part for part in parts if part is not None) + "\n"


def _eval_results(results: Mapping, eval_dataset, eval_dataset_config, eval_split) -> list[EvalResult] | None:
    """The Hub `model-index` entries: finite numeric results measured on a Hub dataset."""
    if not eval_dataset:
        return None
    return [
        EvalResult(
            task_type="audio-classification",
            dataset_type=eval_dataset,
            dataset_name=eval_dataset,
            dataset_config=eval_dataset_config,
            dataset_split=eval_split,
            metric_type=metric,
            metric_value=float(value),
        )
        for metric, value in results.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ] or None


def _metadata_section(task: str, name: str, datasets: Sequence[str], base_model, eval_results) -> str:
    """The YAML header the Hub reads; only Hub ids go in it, never local paths."""
    tags = ["maskspec", "audio", "self-supervised"]
    tags += ["masked-spectrogram-modeling", "pretraining"] if task == "pretraining" else ["audio-classification"]
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        tags=tags,
        datasets=_hub_datasets(datasets) or None,
        pipeline_tag="feature-extraction" if task == "pretraining" else "audio-classification",
        base_model=base_model if base_model and _HUB_ID.match(base_model) and not Path(base_model).exists() else None,
        model_name=name if eval_results else None,
        eval_results=eval_results,
    )
    return f"---\n{card_data.to_yaml()}\n---"


def _description_section(config, task: str, base_model) -> str:
    if task == "pretraining":
        return (
            "A MaskSpec audio encoder pre-trained without labels by masked spectrogram prediction (MaskSpec, Chong et "
            "al., 2022, [arXiv:2204.12768](https://arxiv.org/abs/2204.12768)): the log-mel spectrogram is cut into "
            f"{config.patch_size}x{config.patch_size} patches, {config.mask_ratio:.0%} of them are removed at random, "
            "the encoder sees the rest and a light decoder reconstructs the missing ones. This folder holds the "
            "encoder and the pre-training decoder (`MaskSpecForPreTraining`); loading it for classification drops the "
            "decoder."
        )
    labels = list(getattr(config, "id2label", {}).values())
    shown = ", ".join(map(str, labels[:20])) + (", ..." if len(labels) > 20 else "")
    kind = "multi-label" if config.problem_type == "multi_label_classification" else "single-label"
    return (
        f"A MaskSpec audio classifier ({kind}, {len(labels)} classes: {shown})"
        + (f", fine-tuned from `{public_name(base_model)}`" if base_model else "")
        + ". MaskSpec (Chong et al., 2022, [arXiv:2204.12768](https://arxiv.org/abs/2204.12768)) pre-trains a "
        "ViT encoder by masked spectrogram prediction; the classifier mean-pools the encoder's patch embeddings "
        "and applies LayerNorm and a linear layer."
    )


def _architecture_section(config, task: str, size: str) -> str:
    text = (
        f"Architecture: {size}: width {config.hidden_size}, {config.num_hidden_layers} blocks, "
        f"{config.num_attention_heads} heads, FFN {config.intermediate_size}; "
        f"{config.patch_size}x{config.patch_size} patches of a {config.num_mel_bins}-bin log-mel spectrogram; "
        f"{config.max_frames}-frame windows."
    )
    if task == "pretraining":
        text += " " + describe_decoder(config)
    return text


def describe_decoder(config) -> str:
    """The decoder and masking in one sentence (which of the paper's choices the run changed)."""
    kind = (
        "masked-patch queries cross-attending to the visible encoder outputs"
        if config.decoder_type == "cross_attention"
        else "self-attention over all patches (the paper's)"
    )
    ratio = config.decoder_reconstruct_ratio
    share = "every masked patch" if ratio >= 1 else f"a random {ratio:.0%} of the masked patches per step"
    return (
        f"Decoder: width {config.decoder_hidden_size}, {config.decoder_num_hidden_layers} blocks, {kind}, "
        f"reconstructing {share}; masking: {config.mask_strategy}, ratio {config.mask_ratio:g}."
    )


def _figure_section(figure: str | None) -> str | None:
    if not figure:
        return None
    return (
        "## Reconstruction\n\n"
        f"![input | masked input | reconstruction]({figure})\n\n"
        "A fixed clip: its spectrogram, the visible patches the encoder gets, and the decoder's reconstruction of "
        "the masked ones."
    )


def _usage_section(task: str) -> str:
    auto_class = "AutoModelForPreTraining" if task == "pretraining" else "AutoModelForAudioClassification"
    usage = [
        "## How to use",
        "",
        "```python",
        "import maskspec_hf  # or pass trust_remote_code=True: the folder carries its code",
        f"from transformers import AutoFeatureExtractor, AutoModel, {auto_class}",
        "",
        'feature_extractor = AutoFeatureExtractor.from_pretrained("<this repo>")',
    ]
    if task == "pretraining":
        usage += [
            'encoder = AutoModel.from_pretrained("<this repo>")  # the encoder alone, for embeddings',
            'inputs = feature_extractor(waveform, sampling_rate=feature_extractor.sampling_rate, return_tensors="pt")',
            "embedding = encoder(**inputs).pooler_output  # [batch, hidden_size]",
            '# fine-tune: AutoModelForAudioClassification.from_pretrained("<this repo>", num_labels=...)',
        ]
    else:
        usage += [
            "from transformers import pipeline",
            'classifier = pipeline("audio-classification", model="<this repo>")',
            'print(classifier("clip.wav", top_k=5))',
        ]
    usage.append("```")
    return "\n".join(usage)


def _training_data_section(datasets: Sequence[str]) -> str:
    lines = ["## Training data", ""]
    lines += [f"- {d}" for d in datasets] if datasets else ["- not recorded"]
    return "\n".join(lines)


def _hyperparameters_section(hyperparameters: Mapping | None) -> str | None:
    if not hyperparameters:
        return None
    rows = sorted(dict(hyperparameters).items())
    return "## Training hyperparameters\n\n" + _table(("hyperparameter", "value"), rows)


def _results_section(results: Mapping, eval_dataset: str | None, eval_split: str | None) -> str | None:
    if not results:
        return None
    where = f" on `{eval_dataset}`" + (f" ({eval_split})" if eval_split else "") if eval_dataset else ""
    return f"## Results of this run{where}\n\n" + _table(("metric", "value"), list(results.items()))


def _paper_results_section() -> str:
    return (
        "## Results reported by the MaskSpec paper (not reproduced here)\n\n"
        "Reported by the paper, not reproduced here: the scores of the paper's own checkpoints (pre-trained on "
        "AudioSet, then fine-tuned on each task). They say nothing about this checkpoint.\n\n" + paper_results_table()
    )


CITATION = (
    "## Citation\n\n"
    "```bibtex\n"
    "@inproceedings{chong2023maskspec,\n"
    "  title     = {Masked Spectrogram Prediction for Self-Supervised Audio Pre-Training},\n"
    "  author    = {Chong, Dading and Wang, Helin and Zhou, Peilin and Zeng, Qingcheng},\n"
    "  booktitle = {ICASSP},\n"
    "  year      = {2023},\n"
    "  note      = {arXiv:2204.12768}\n"
    "}\n"
    "```"
)


def write_model_card(folder, config, **kwargs) -> Path:
    """Render the card (see `render_model_card`) into `folder/README.md` and return its path."""
    path = Path(folder) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_model_card(config, **kwargs), encoding="utf-8")
    return path


__all__ = ["PAPER_RESULTS", "TASKS", "paper_results_table", "render_model_card", "write_model_card"]
