"""Models, configs and feature extractors from presets, folders or the Hub; the one `--config_overrides` parser.

A typo in an override must never train a different model than the one asked for, so unknown fields are an error.
"""

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub.errors import StrictDataclassError

from .configuration_maskspec import MaskSpecConfig


@dataclass
class ModelArguments:
    """Which model to start from; shared by every command."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A preset name (tiny, small, base: random init), or a MaskSpec folder or Hub id (pre-training, "
                  "classification or encoder checkpoint)."},
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
