"""`convert_checkpoint`: one official checkpoint file -> one Hub-ready MaskSpec-HF folder."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub.errors import StrictDataclassError

from ..configuration_maskspec import MaskSpecConfig
from ..data.labels import MULTI_LABEL, read_class_index
from ..feature_extraction_maskspec import MaskSpecFeatureExtractor
from ..loading import parse_config_overrides
from ..modeling_maskspec import MaskSpecForAudioClassification, MaskSpecForPreTraining, MaskSpecModel
from .architecture import Architecture, infer_architecture
from .card import write_conversion_card
from .normalization_file import maskspec_normalization, read_frame_statistics
from .safe_load import LoadedCheckpoint, load_checkpoint
from .sources import Source, get_source
from .weights import convert_weights


logger = logging.getLogger(__name__)

MODEL_CLASSES = {
    "pretraining": MaskSpecForPreTraining,
    "encoder": MaskSpecModel,
    "audio-classification": MaskSpecForAudioClassification,
}


@dataclass
class ConversionResult:
    """What `convert_checkpoint` wrote and decided."""

    output_dir: Path
    task: str  # "pretraining", "encoder" or "audio-classification"
    model_class: str
    config: MaskSpecConfig
    notes: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _label_fields(labels_csv, num_labels: int) -> dict:
    if labels_csv is None:
        raise ValueError(
            f"The checkpoint is a fine-tuned classifier with {num_labels} outputs: pass --labels with its class "
            "index CSV (index,mid,display_name; AudioSet's class_labels_indices.csv for the official ones)."
        )
    names, _ = read_class_index(labels_csv)
    if len(names) != num_labels:
        raise ValueError(f"--labels {labels_csv} lists {len(names)} classes; the checkpoint's head has {num_labels}.")
    return {
        "num_labels": num_labels,
        "id2label": dict(enumerate(names)),
        "label2id": {name: index for index, name in enumerate(names)},
        "problem_type": MULTI_LABEL,  # all three are trained with a sigmoid per class (BCE)
    }


def build_config(arch: Architecture, labels_csv=None, config_overrides: dict | None = None) -> MaskSpecConfig:
    fields = dict(arch.config_fields)
    num_labels = fields.pop("num_labels", None)
    if arch.task == "audio-classification":
        fields |= _label_fields(labels_csv, num_labels)
    # Overrides first: a head count read wrongly would already fail MaskSpecConfig's checks.
    fields |= config_overrides or {}
    try:
        return MaskSpecConfig(**fields)
    except (TypeError, ValueError, StrictDataclassError) as err:
        raise ValueError(f"The converted config is not valid: {err}") from err


def read_normalization(source: Source, normalization_file) -> dict:
    """Feature-extractor overrides from `normalization_file`: MaskSpec's per-bin statistics (required there), folded
    into one per-bin `(x - mean) / std`. Read before the checkpoint, so a missing or bad file fails fast."""
    if source.name != "maskspec":
        if normalization_file is not None:
            raise ValueError(
                f"--normalization_file is MaskSpec's per-bin statistics; {source.title} does not use one."
            )
        return {}
    if normalization_file is None:
        raise ValueError(
            "--source maskspec needs --normalization_file: MaskSpec normalizes every mel bin with the statistics of "
            "audioset/mean_std_128.npy in https://github.com/WangHelin1997/MaskSpec (pass your copy of that file)."
        )
    mean, std = maskspec_normalization(*read_frame_statistics(normalization_file, source.num_mel_bins))
    return {"mean": mean, "std": std}


def build_feature_extractor(source: Source, loaded: LoadedCheckpoint, config: MaskSpecConfig, normalization=None):
    """The source's front end (see `MaskSpecFeatureExtractor.FRONT_ENDS`) with the statistics it was trained on:
    `normalization` (from `read_normalization`), or for MSM-MAE the run's `--norm_stats` when it stored them."""
    overrides = dict(normalization or {})
    stats = loaded.args.get("norm_stats")
    if source.name == "msm-mae" and isinstance(stats, (list, tuple)) and len(stats) == 2:
        overrides["mean"], overrides["std"] = float(stats[0]), float(stats[1])
    extractor = MaskSpecFeatureExtractor.from_front_end(source.front_end, **overrides)
    if extractor.feature_size != config.num_mel_bins:
        raise ValueError(
            f"The {source.title} front end has {extractor.feature_size} mel bins, the model {config.num_mel_bins}."
        )
    return extractor


def _prepare_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.is_file():
        raise NotADirectoryError(f"--output_dir {output_dir} is a file.")
    taken = [name for name in ("config.json", "model.safetensors") if (output_dir / name).exists()]
    if taken and not overwrite:
        raise FileExistsError(
            f"--output_dir {output_dir} already holds {', '.join(taken)}; pass --overwrite_output_dir to replace it."
        )
    output_dir.mkdir(parents=True, exist_ok=True)


def _build_model(arch: Architecture, config: MaskSpecConfig, weights: dict):
    """The model with the converted weights; any missing or unexpected weight is an error here, before saving."""
    model = MODEL_CLASSES[arch.task](config)
    if arch.task == "encoder":  # MaskSpecModel's own weights carry no `maskspec.` prefix
        weights = {name.removeprefix("maskspec."): tensor for name, tensor in weights.items()}
    result = model.load_state_dict(weights, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(
            f"Converted weights do not fit {type(model).__name__}: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}."
        )
    return model.eval()


def convert_checkpoint(
    source: str,
    checkpoint_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    labels_csv: str | os.PathLike | None = None,
    config_overrides: str | dict | None = None,
    overwrite: bool = False,
    normalization_file: str | os.PathLike | None = None,
) -> ConversionResult:
    """Convert an official `source` ("maskspec", "msm-mae", "audiomae") checkpoint into a MaskSpec-HF folder.

    Writes `config.json` (with the full `auto_map` and the code files), `model.safetensors`,
    `preprocessor_config.json` (the source's front end) and a `README.md` model card. Pre-training checkpoints
    become `MaskSpecForPreTraining` (or `MaskSpecModel` when their decoder has no MaskSpec-HF counterpart),
    fine-tuned ones `MaskSpecForAudioClassification` with the labels of `labels_csv` (multi-label).
    `config_overrides` ("key=value,..." or a dict) sets config fields the weights do not determine, e.g. head counts
    of non-standard sizes. `normalization_file` (MaskSpec only, required there) is the authors'
    `audioset/mean_std_128.npy`, whose per-bin statistics the feature extractor applies.
    """
    spec = get_source(source)
    checkpoint_path, output_dir = Path(checkpoint_path), Path(output_dir)
    overrides = parse_config_overrides(config_overrides)
    normalization = read_normalization(spec, normalization_file)
    loaded = load_checkpoint(checkpoint_path)
    arch = infer_architecture(loaded.state_dict, spec, loaded.args, overrides)
    weights = convert_weights(loaded.state_dict, arch)
    config = build_config(arch, labels_csv, overrides)
    model = _build_model(arch, config, weights)
    extractor = build_feature_extractor(spec, loaded, config, normalization)

    _prepare_output_dir(output_dir, overwrite)
    model.save_pretrained(output_dir)
    extractor.save_pretrained(output_dir)
    container = (
        f"a `torch.save` dict with {', '.join(loaded.container_keys)}"
        + (f" (epoch {loaded.epoch})" if loaded.epoch is not None else "")
        if loaded.container_keys
        else "a bare state dict"
    )
    files = {checkpoint_path.name: _sha256(checkpoint_path)}
    if normalization_file is not None:
        files[Path(normalization_file).name] = _sha256(Path(normalization_file))
    write_conversion_card(output_dir, spec, arch, config, checkpoint_path, files, container)
    for note in arch.notes:
        logger.info(note)
    return ConversionResult(output_dir, arch.task, type(model).__name__, config, list(arch.notes), list(arch.left_out))


__all__ = [
    "MODEL_CLASSES",
    "ConversionResult",
    "build_config",
    "build_feature_extractor",
    "convert_checkpoint",
    "read_normalization",
]
