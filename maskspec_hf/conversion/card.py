"""The model card (README.md) of a converted folder: where the weights come from, their licence, what the authors
report, what the conversion decided and what still differs from the original."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCardData

from .architecture import Architecture
from .sources import Source, published_checkpoints


_TASK_WORDS = {
    "pretraining": "pre-trained encoder and decoder (`MaskSpecForPreTraining`)",
    "encoder": "pre-trained encoder only (`MaskSpecModel`)",
    "audio-classification": "fine-tuned audio classifier (`MaskSpecForAudioClassification`)",
}


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _size_name(config) -> str:
    names = {192: "Tiny", 384: "Small", 768: "Base", 1024: "Large", 1280: "Huge"}
    return f"ViT-{names.get(config.hidden_size, f'{config.hidden_size}d')}"


def _metadata(source: Source, arch: Architecture, name: str) -> str:
    tags = ["maskspec", "audio", "converted", source.name]
    tags += ["audio-classification", "audioset"] if arch.task == "audio-classification" else ["self-supervised"]
    card_data = ModelCardData(
        library_name="transformers",
        tags=tags,
        pipeline_tag="audio-classification" if arch.task == "audio-classification" else "feature-extraction",
        model_name=name,
        **source.hub_licence,
    )
    return f"---\n{card_data.to_yaml()}\n---"


def _origin_section(source: Source, files: dict[str, str], container: str) -> str:
    checkpoint, *others = files.items()
    lines = [
        "## Origin",
        "",
        f"- Source code and checkpoints: {source.repository}",
        f"- Paper: {source.paper}",
        f"- Converted file: `{checkpoint[0]}` (sha256 `{checkpoint[1]}`), {container}",
    ]
    lines += [f"- Normalization statistics: `{name}` (sha256 `{digest}`)" for name, digest in others]
    lines.append(
        f"- Converted with `maskspec-convert --source {source.name}` (MaskSpec-HF), which loads the files without "
        "running their pickles (`torch.load(weights_only=True)` with an allow-list; NumPy arrays only for the "
        "statistics)."
    )
    return "\n".join(lines)


def _licence_section(source: Source) -> str:
    text = f"## Licence\n\nThe weights keep their authors' licence: {source.licence}"
    if not source.redistributable:
        text += "\n\n**Do not publish this folder.** It is for your own evaluation under the licence above."
    return text


def _patch_order_line(arch: Architecture) -> str:
    if arch.layout == "time_freq":
        return (
            "- patch order: the original's time x frequency patches are already MaskSpec-HF's (time-major, "
            "frames-first); the Conv2d kernel becomes the Linear patch projection unchanged."
        )
    what = "the position tables and the decoder's output rows" if arch.with_decoder else "the position table"
    return (
        f"- patch order: the Conv2d patch projection, {what} are permuted from the original's frequency x time "
        "patches to MaskSpec-HF's time-major, frames-first ones; the converted model computes the same numbers."
    )


def _architecture_section(arch: Architecture, config) -> str:
    if arch.layout == "freq_time":
        image = f"frequency x time image of {arch.grid.freq} x {arch.grid.time} patches"
    else:
        image = f"time x frequency image of {arch.grid.time} x {arch.grid.freq} patches"
    lines = [
        "## What was converted",
        "",
        f"{_TASK_WORDS[arch.task]}: width {config.hidden_size}, {config.num_hidden_layers} blocks, "
        f"{config.num_attention_heads} heads, FFN {config.intermediate_size}; {config.patch_size}x{config.patch_size} "
        f"patches of a {config.num_mel_bins}-bin log-mel spectrogram; the original's {image} "
        f"({config.max_frames} frames).",
        "",
        f"- class token: {'yes' if config.use_cls_token else 'no'}; pooling: `{config.pooling}`"
        f"{' + fc_norm' if config.use_fc_norm and arch.task == 'audio-classification' else ''}; final LayerNorm: "
        f"{'yes' if config.use_final_layernorm else 'no'}",
        f"- positions: `{config.position_embedding_type}`"
        + (
            " (the checkpoint's table equals MaskSpec-HF's 2-D sinusoid: any input length works)"
            if config.position_embedding_type == "sinusoidal"
            else f" (the checkpoint's table, for at most {config.max_frames} frames; shorter inputs use its first "
            "time columns)"
        ),
        _patch_order_line(arch),
    ]
    if arch.with_decoder:
        lines.append(
            f"- decoder: width {config.decoder_hidden_size}, {config.decoder_num_hidden_layers} blocks, "
            f"{config.decoder_num_attention_heads} heads, positions `{config.decoder_position_embedding_type}`"
        )
    lines += [f"- {note}" for note in arch.notes]
    return "\n".join(lines)


def _usage_section(arch: Architecture) -> str:
    if arch.task == "audio-classification":
        body = [
            "from transformers import pipeline",
            'classifier = pipeline("audio-classification", model="<this folder>")  # sigmoid scores, multi-label',
            'print(classifier("clip.wav", top_k=5))',
        ]
    else:
        body = [
            "from transformers import AutoFeatureExtractor, AutoModel",
            'feature_extractor = AutoFeatureExtractor.from_pretrained("<this folder>")',
            'encoder = AutoModel.from_pretrained("<this folder>")',
            'inputs = feature_extractor(waveform, sampling_rate=feature_extractor.sampling_rate, return_tensors="pt")',
            "embedding = encoder(**inputs).pooler_output",
        ]
    return "## How to use\n\n```python\nimport maskspec_hf  # or trust_remote_code=True\n" + "\n".join(body) + "\n```"


def _reported_section(source: Source, task: str, checkpoint_path: str) -> str | None:
    kind = "audio-classification" if task == "audio-classification" else "pretraining"
    checkpoints = published_checkpoints(source, kind, checkpoint_path)
    rows = [(checkpoint.name, *row) for checkpoint in checkpoints for row in checkpoint.reported]
    if not rows:
        return None
    return (
        "## Results reported by the authors (not reproduced here)\n\n"
        + _table(("checkpoint", "task", "metric", "score"), rows)
        + "\n\nWhere the authors publish them: "
        + "; ".join(f"{c.name}: {c.where}" for c in source.checkpoints)
    )


def _differences_section(source: Source, task: str) -> str | None:
    items = source.differences.get("audio-classification" if task == "audio-classification" else "pretraining")
    if not items:
        return None
    return "## Known differences from the original\n\n" + "\n".join(f"- {item}" for item in items)


def render_conversion_card(
    source: Source, arch: Architecture, config, checkpoint_path, files: dict[str, str], container: str
) -> str:
    """Text of the converted folder's README.md. `files`: the converted files' names (never their local folders)
    and sha256 digests, the checkpoint first."""
    kind = {"audio-classification": "audio classifier", "pretraining": "pre-trained", "encoder": "pre-trained encoder"}
    name = f"{source.title} {_size_name(config)} {kind[arch.task]} (converted to MaskSpec-HF)"
    parts = [
        _metadata(source, arch, name),
        f"# {name}",
        f"The authors' {source.title} weights, converted to a MaskSpec-HF folder: they load with the Hugging Face "
        "Auto classes, the audio-classification pipeline, `Trainer` and the MaskSpec-HF commands. The conversion "
        "only renames and permutes weights; nothing was trained here.",
        _origin_section(source, files, container),
        _licence_section(source),
        _architecture_section(arch, config),
        _usage_section(arch),
        _reported_section(source, arch.task, str(checkpoint_path)),
        _differences_section(source, arch.task),
        f"## Citation\n\n```bibtex\n{source.citation}\n```",
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def write_conversion_card(folder: str | Path, *args, **kwargs) -> Path:
    path = Path(folder) / "README.md"
    path.write_text(render_conversion_card(*args, **kwargs), encoding="utf-8")
    return path


__all__ = ["render_conversion_card", "write_conversion_card"]
