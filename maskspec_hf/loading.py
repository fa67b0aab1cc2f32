"""Models, configs and feature extractors from presets, folders or the Hub; the one `--config_overrides` parser.

Every command names its model the same way (`ModelArguments`), so they all resolve it here. A typo in an override
must never train a different model than the one asked for, so unknown fields are an error; a checkpoint that lacks
encoder weights must never silently give random features, so that is an error too.
"""

import difflib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers.utils import logging as hf_logging

from .configuration_maskspec import MASKSPEC_PRESETS, MaskSpecConfig
from .feature_extraction_maskspec import MaskSpecFeatureExtractor
from .modeling_maskspec import MaskSpecModel


logger = hf_logging.get_logger(__name__)


@dataclass
class ModelArguments:
    """Which model to start from; shared by every command."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A preset name (tiny, small, base: random init), or a MaskSpec folder or Hub id (pre-training, "
            "classification or encoder checkpoint)."
        },
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Config JSON file, folder or Hub id (instead of the model's own)."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Override config fields, e.g. 'num_hidden_layers=2,decoder_num_hidden_layers=1'."},
    )
    feature_extractor_name: str | None = field(
        default=None, metadata={"help": "Feature extractor folder or Hub id (default: the model's, else defaults)."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where models and datasets are cached."})
    model_revision: str = field(default="main", metadata={"help": "Model version (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the cached login)."})
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "Attention kernel, as transformers' `attn_implementation` (default: the model's, sdpa). `eager` "
            "makes tiny-cpu.json's bf16 pre-training step 1.5x faster on CPU, whose sequences are short "
            "(benchmarks/README.md, 'Changes made for performance'). Not saved with the model."
        },
    )


def parse_config_overrides(overrides: str | dict | None) -> dict[str, Any]:
    """'a=1,b=0.5,c=true,d=gelu' -> {"a": 1, "b": 0.5, "c": True, "d": "gelu"} (values parsed as JSON if they parse),
    every key checked against `MaskSpecConfig`'s fields."""
    if isinstance(overrides, dict):
        result = dict(overrides)
    else:
        result = {}
        for item in filter(None, (part.strip() for part in (overrides or "").split(","))):
            if "=" not in item:
                raise ValueError(f"--config_overrides items must look like key=value, got {item!r}.")
            key, value = (part.strip() for part in item.split("=", 1))
            result[key] = _parse_value(value)
    known = set(MaskSpecConfig().to_dict())
    for key in result:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"--config_overrides: {key!r} is not a MaskSpecConfig field.{hint}")
    return result


def _parse_value(text: str) -> Any:
    # Python spellings (True, None) as well as JSON ones: both appear in recipes and shell history.
    words = {"true": True, "false": False, "none": None, "null": None}
    if text.lower() in words:
        return words[text.lower()]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_config_overrides(config: MaskSpecConfig, overrides: str | dict | None) -> MaskSpecConfig:
    """Set the parsed overrides on `config` (in place) and re-check its values; returns `config`."""
    for key, value in parse_config_overrides(overrides).items():
        try:
            setattr(config, key, value)
        except (TypeError, ValueError, StrictDataclassError) as err:  # the strict dataclass's type check
            raise ValueError(f"--config_overrides: bad value {value!r} for {key!r}: {err}") from err
    config._check_values()
    return config


# ----------------------------------------------------------------------------------------------------------------------
# Presets, configs, feature extractors, encoders
# ----------------------------------------------------------------------------------------------------------------------


def is_preset_name(name: str | None) -> bool:
    """True for "tiny"/"small"/"base" (optionally "maskspec-" prefixed) that is not an existing local path."""
    return (
        isinstance(name, str)
        and name.lower().removeprefix("maskspec-") in MASKSPEC_PRESETS
        and not os.path.exists(name)
    )


def hub_options(model_args: ModelArguments) -> dict[str, Any]:
    """The Hub fields of `model_args` (`cache_dir`, `model_revision`, `token`), as the loaders here take them."""
    return {"cache_dir": model_args.cache_dir, "model_revision": model_args.model_revision, "token": model_args.token}


def _from_pretrained_kwargs(cache_dir=None, model_revision=None, token=None, **kwargs) -> dict[str, Any]:
    # `ModelArguments` names the revision `model_revision` (as transformers' example scripts do); from_pretrained
    # calls it `revision`. Unset options are left out, so from_pretrained's own defaults apply.
    options = {"cache_dir": cache_dir, "revision": model_revision, "token": token}
    return {**{k: v for k, v in options.items() if v is not None}, **kwargs}


def set_attention_kernel(model: torch.nn.Module, attn_implementation: str | None) -> torch.nn.Module:
    """`model` with `attn_implementation` (None: keep its own); transformers checks the name and does not save it."""
    if attn_implementation:
        model.set_attn_implementation(attn_implementation)
    return model


def load_config(
    source: str | None,
    config_name: str | None = None,
    config_overrides: str | dict | None = None,
    **hub: Any,
) -> MaskSpecConfig:
    """The `MaskSpecConfig` of `config_name` (a JSON file, folder or Hub id) if given, else of `source` (a preset
    name, folder or Hub id), with `config_overrides` applied by the one strict parser.

    `hub`: `cache_dir`, `model_revision`, `token` (as in `ModelArguments`) and any other `from_pretrained` option."""
    if config_name:
        if Path(config_name).is_file():
            config = MaskSpecConfig.from_json_file(config_name)
        else:
            config = MaskSpecConfig.from_pretrained(config_name, **_from_pretrained_kwargs(**hub))
    elif is_preset_name(source):
        config = MaskSpecConfig.from_preset(source)
    elif source:
        config = MaskSpecConfig.from_pretrained(source, **_from_pretrained_kwargs(**hub))
    else:
        raise ValueError(
            "Pass --model_name_or_path: a preset name (tiny, small, base), a MaskSpec folder or a Hub id."
        )
    return apply_config_overrides(config, config_overrides)


def load_feature_extractor(source: str | None, **hub: Any) -> MaskSpecFeatureExtractor:
    """The feature extractor saved with `source`, or the default one (PaSST's front end) when it has none (a preset
    name, or a folder without `preprocessor_config.json`). `hub` as for `load_config`."""
    if source is None or is_preset_name(source):
        return MaskSpecFeatureExtractor()
    try:
        return MaskSpecFeatureExtractor.from_pretrained(source, **_from_pretrained_kwargs(**hub))
    except OSError:
        logger.warning(f"No preprocessor_config.json in {source}: using the default MaskSpecFeatureExtractor.")
        return MaskSpecFeatureExtractor()


def load_encoder(
    source: str,
    random_init: bool = False,
    seed: int = 0,
    config_overrides: str | dict | None = None,
    config_name: str | None = None,
    feature_extractor_name: str | None = None,
    attn_implementation: str | None = None,
    **hub: Any,
) -> tuple[MaskSpecModel, MaskSpecFeatureExtractor]:
    """The MaskSpec encoder (no decoder, no head) of any `from_pretrained` source, and its feature extractor.

    `source` is a folder or Hub id of a pre-training, classification or encoder checkpoint, or a preset name
    ("tiny"/"small"/"base", randomly initialized). With `random_init=True` the source's config is used with fresh
    weights (seeded by `seed`): the baseline a pre-trained encoder is compared with. The decoder and classification
    head of a checkpoint are dropped without a load report; encoder weights missing from the checkpoint raise a
    `ValueError` (a wrong checkpoint must not silently give random features). `hub` as for `load_config`.
    """
    config = load_config(source, config_name, config_overrides, **hub)
    feature_extractor = load_feature_extractor(feature_extractor_name or source, **hub)
    if random_init or is_preset_name(source):
        torch.manual_seed(seed)
        return set_attention_kernel(MaskSpecModel(config), attn_implementation).eval(), feature_extractor

    with quiet_load_report():
        model, info = MaskSpecModel.from_pretrained(
            source, config=config, output_loading_info=True, **_from_pretrained_kwargs(**hub)
        )
    if info["missing_keys"]:
        raise ValueError(
            f"{source} lacks {len(info['missing_keys'])} MaskSpec encoder weights (e.g. "
            f"{sorted(info['missing_keys'])[:3]}): is it a MaskSpec checkpoint? Pass random_init=True for a random "
            "encoder."
        )
    dropped = sorted({key.split(".")[0] for key in info["unexpected_keys"]})
    logger.info(
        f"Loaded the MaskSpec encoder from {source}" + (f" (ignored: {', '.join(dropped)})" if dropped else "")
    )
    return set_attention_kernel(model, attn_implementation).eval(), feature_extractor


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


class quiet_load_report:
    """Context manager dropping transformers' per-key load report (only that message; errors still raise).

    Callers summarize what was loaded, dropped or newly initialized in one line of their own.
    """

    def __enter__(self):
        self._logger = hf_logging.get_logger("transformers.modeling_utils")
        self._filter = _DropLoadReport()
        self._logger.addFilter(self._filter)
        return self

    def __exit__(self, *exc):
        self._logger.removeFilter(self._filter)
        return False


def load_classifier(
    model_args: ModelArguments,
    label_space,
    patchout_ratio: float | None = None,
    ignore_mismatched_sizes: bool = False,
) -> tuple[torch.nn.Module, MaskSpecFeatureExtractor, str]:
    """The `MaskSpecForAudioClassification` to fine-tune for `label_space` (a `maskspec_hf.data.labels.LabelSpace`:
    its classes and problem type go into the config), its feature extractor and a one-line description of where its
    weights came from.

    A preset name builds a randomly initialized model (seed first). A checkpoint keeps its encoder; the decoder of a
    pre-training checkpoint is dropped and the head (fc_norm, classifier) is new, which the description says instead
    of transformers' per-key report. Encoder weights missing from the checkpoint are an error, and so is a head of
    another size unless `ignore_mismatched_sizes`. `patchout_ratio` (None: the checkpoint's) replaces the config's.
    """
    from .modeling_maskspec import MaskSpecForAudioClassification

    source, hub = model_args.model_name_or_path, hub_options(model_args)
    config = load_config(source, model_args.config_name, model_args.config_overrides, **hub)
    source_architectures = config.architectures or []
    task = {
        "num_labels": label_space.num_labels,
        "id2label": label_space.id2label,
        "label2id": label_space.label2id,
        "problem_type": label_space.problem_type,
    }
    if patchout_ratio is not None:
        task["patchout_ratio"] = patchout_ratio
    config = MaskSpecConfig(**{**config.to_dict(), **task})  # rebuilt: the label fields depend on each other
    feature_extractor = load_feature_extractor(model_args.feature_extractor_name or source, **hub)
    if is_preset_name(source):
        size = source.lower().removeprefix("maskspec-").capitalize()
        model = set_attention_kernel(MaskSpecForAudioClassification(config), model_args.attn_implementation)
        return model, feature_extractor, f"randomly initialized MaskSpec-{size}"
    try:
        with quiet_load_report():
            model, info = MaskSpecForAudioClassification.from_pretrained(
                source, config=config, ignore_mismatched_sizes=ignore_mismatched_sizes, output_loading_info=True,
                **_from_pretrained_kwargs(**hub),
            )  # fmt: skip
    except RuntimeError as error:
        if "ignore_mismatched_sizes" in str(error):
            raise ValueError(
                f"The classification head of {source} has a different number of labels than this task "
                f"({label_space.num_labels}): pass --ignore_mismatched_sizes to train a new head."
            ) from error
        raise
    head = ("fc_norm.", "classifier.")
    missing_encoder = [k for k in info["missing_keys"] if not k.startswith(head)]
    if missing_encoder:
        raise ValueError(
            f"{source} lacks {len(missing_encoder)} MaskSpec encoder weights (e.g. {sorted(missing_encoder)[:3]}): "
            "is it a MaskSpec checkpoint? Pass a preset name (tiny/small/base) to train from scratch."
        )
    new_head = sorted({k.split(".")[0] for k in [*info["missing_keys"], *info.get("mismatched_keys", [])]})
    dropped = {k.split(".")[0] for k in info["unexpected_keys"]}
    if any(name.endswith("ForPreTraining") for name in source_architectures):
        dropped.add("decoder")  # ignored on load by `_keys_to_ignore_on_load_unexpected`
    origin = f"encoder from {source}"
    if new_head:
        origin += f"; new {'/'.join(new_head)} for {label_space.num_labels} labels"
    if dropped:
        origin += f"; dropped the checkpoint's {'/'.join(sorted(dropped))} weights"
    return set_attention_kernel(model, model_args.attn_implementation), feature_extractor, origin
