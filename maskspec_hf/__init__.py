# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""MaskSpec for Hugging Face Transformers: masked spectrogram pre-training for audio.

Importing this package registers the MaskSpec classes with the Auto classes, so `AutoModel`,
`AutoModelForPreTraining`, `AutoModelForAudioClassification`, `AutoFeatureExtractor` and
`pipeline("audio-classification")` work with MaskSpec checkpoints.
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForPreTraining,
)

from .configuration_maskspec import MASKSPEC_PRESETS, MaskSpecConfig
from .feature_extraction_maskspec import MaskSpecFeatureExtractor
from .modeling_maskspec import (
    MaskSpecForAudioClassification,
    MaskSpecForPreTraining,
    MaskSpecModel,
    MaskSpecPreTrainedModel,
)
from .pipeline import MaskSpecAudioClassificationPipeline, register_pipeline


__version__ = "0.1.0"


def _register() -> None:
    AutoConfig.register("maskspec", MaskSpecConfig, exist_ok=True)
    AutoModel.register(MaskSpecConfig, MaskSpecModel, exist_ok=True)
    AutoModelForPreTraining.register(MaskSpecConfig, MaskSpecForPreTraining, exist_ok=True)
    AutoModelForAudioClassification.register(MaskSpecConfig, MaskSpecForAudioClassification, exist_ok=True)
    AutoFeatureExtractor.register(MaskSpecConfig, MaskSpecFeatureExtractor, exist_ok=True)
    # `save_pretrained` then writes `auto_map` and copies the code files, so a saved folder loads with
    # `trust_remote_code=True` where this package is not installed. The config's save writes the map of every Auto
    # class (`REMOTE_CODE_AUTO_MAP`) and all three code files, whichever class saved the folder.
    MaskSpecConfig.register_for_auto_class()
    MaskSpecModel.register_for_auto_class("AutoModel")
    MaskSpecForPreTraining.register_for_auto_class("AutoModelForPreTraining")
    MaskSpecForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
    MaskSpecFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    # `pipeline("audio-classification")`: soxr instead of torchaudio for MaskSpec models, the stock one for others.
    register_pipeline()


_register()

__all__ = [
    "MASKSPEC_PRESETS",
    "MaskSpecAudioClassificationPipeline",
    "MaskSpecConfig",
    "MaskSpecFeatureExtractor",
    "MaskSpecForAudioClassification",
    "MaskSpecForPreTraining",
    "MaskSpecModel",
    "MaskSpecPreTrainedModel",
]
