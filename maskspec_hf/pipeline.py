# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""`pipeline("audio-classification")` for MaskSpec models, without torchaudio.

transformers' built-in pipeline resamples with torchaudio, which this project does not install; this drop-in
replacement resamples with soxr (`maskspec_hf.audio.resample_audio`). `import maskspec_hf` registers it for the task.

For MaskSpec models (`config.model_type == "maskspec"`) it is transformers' `AudioClassificationPipeline` with one
change: audio passed as `{"array" | "raw": ..., "sampling_rate": ...}` (or a torchcodec `AudioDecoder`) at another rate
is resampled with soxr, or, with `resample=False`, rejected with a clear error. Every input, at any rate, goes through
the feature extractor's checks on the samples as given (integer PCM, NaN, empty, stereo are rejected with the same
message whatever the rate). Every other model gets the built-in `AudioClassificationPipeline` itself, exactly as
without this package. Any length works: the model itself averages the logits of overlapping `config.max_frames`
windows of longer inputs, so `model(...)`, `pipeline(...)` and `Trainer.evaluate` agree; padding is masked.

A folder saved with `save_pretrained` and loaded with `trust_remote_code=True` where this package is not installed
gets the built-in pipeline instead (files and same-rate arrays work the same; other rates then need torchaudio).
"""

import logging
import sys

import numpy as np
import torch
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.audio_classification import AudioClassificationPipeline
from transformers.utils import logging as hf_logging

from .audio import read_audio, resample_audio
from .feature_extraction_maskspec import MaskSpecFeatureExtractor


TASK = "audio-classification"


def _is_maskspec(model) -> bool:
    return getattr(getattr(model, "config", None), "model_type", None) == "maskspec"


def _is_audio_decoder(inputs) -> bool:
    # Only look for torchcodec if the caller imported it: a decoder cannot exist otherwise.
    torchcodec = sys.modules.get("torchcodec")
    return torchcodec is not None and isinstance(inputs, torchcodec.decoders.AudioDecoder)


class MaskSpecAudioClassificationPipeline(AudioClassificationPipeline):
    """transformers' `AudioClassificationPipeline` for MaskSpec models, resampling with soxr instead of torchaudio.

    Constructed for any other model (as `pipeline("audio-classification", ...)` does once this package is imported),
    it returns the built-in `AudioClassificationPipeline` instead, so other models behave exactly as without it.

    Extra argument (at construction or per call):
        resample (`bool`, *optional*, defaults to `True`): resample `{"array"/"raw", "sampling_rate"}` inputs and
            audio decoders whose rate differs from the feature extractor's with soxr. With `False` such inputs raise
            a `ValueError` naming both rates.

    Multi-channel torchcodec `AudioDecoder` inputs are averaged to mono. Everything else is inherited unchanged.
    """

    def __new__(cls, model=None, *args, **kwargs):
        # `model is None`: unpickling or copying, which calls `__new__` without arguments.
        if cls is MaskSpecAudioClassificationPipeline and model is not None and not _is_maskspec(model):
            kwargs.pop("resample", None)  # ours only; the built-in pipeline resamples with torchaudio
            return AudioClassificationPipeline(model, *args, **kwargs)
        return super().__new__(cls)

    def _sanitize_parameters(self, top_k=None, function_to_apply=None, resample=None, **kwargs):
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(
            top_k=top_k, function_to_apply=function_to_apply, **kwargs
        )
        if resample is not None:
            preprocess_params["resample"] = bool(resample)
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, inputs, resample: bool = True):
        if _is_audio_decoder(inputs):
            wave, rate = read_audio(inputs)  # downmixed, at the file's own rate
            inputs = {"array": wave, "sampling_rate": rate}
        if isinstance(inputs, dict) and "sampling_rate" in inputs and ("raw" in inputs or "array" in inputs):
            audio, rate = self._audio_and_rate(inputs)
            if rate != int(self.feature_extractor.sampling_rate):
                return self._features_at(audio, rate, resample)
            inputs = audio
        return super().preprocess(inputs)

    @staticmethod
    def _audio_and_rate(inputs: dict) -> tuple[np.ndarray, int]:
        audio = inputs["raw"] if inputs.get("raw") is not None else inputs.get("array")
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        rate = inputs["sampling_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float)) or not rate > 0:
            raise ValueError(
                f'The "sampling_rate" of the audio dict must be its rate in Hz (a positive number), got {rate!r}.'
            )
        return np.asarray(audio), int(rate)

    def _features_at(self, audio: np.ndarray, rate: int, resample: bool):
        """Features of audio at another `rate`; the feature extractor checks the samples before resampling them, so
        a bad input gets the same error at every rate."""
        target = int(self.feature_extractor.sampling_rate)
        if not resample:
            raise ValueError(
                f"The audio is sampled at {rate} Hz but the model expects {target} Hz, and resampling is turned off "
                f"(resample=False): resample it first, e.g. dataset.cast_column('audio', "
                f"datasets.Audio(sampling_rate={target})), or leave resample=True to resample with soxr."
            )
        if isinstance(self.feature_extractor, MaskSpecFeatureExtractor):
            processed = self.feature_extractor(audio, sampling_rate=rate, resample=True, return_tensors="pt")
        else:  # another extractor on a MaskSpec model: resample here, as the built-in pipeline would
            if audio.ndim != 1:
                raise ValueError(f"We expect a single channel audio input, got shape {audio.shape}.")
            processed = self.feature_extractor(
                resample_audio(audio, rate, target), sampling_rate=target, return_tensors="pt"
            )
        return processed.to(dtype=self.dtype) if self.dtype is not None else processed


def register_pipeline() -> None:
    """Make `pipeline("audio-classification")` use [`MaskSpecAudioClassificationPipeline`] (idempotent).

    The task's model classes, default checkpoint and type are kept, so every other model behaves as before apart from
    the resampling library. `PipelineRegistry.register_pipeline` logs a warning when it replaces a built-in task, which
    would be printed on every `import maskspec_hf`, so that one message is silenced. It also marks the class as a
    *custom* pipeline (`_registered_impl`), which would make `pipe.save_pretrained` write `custom_pipelines` into any
    model's config and copy this module next to it; the replacement is a drop-in for the built-in task, not a
    custom one, so that mark is removed.
    """
    current = PIPELINE_REGISTRY.supported_tasks.get(TASK, {})
    if current.get("impl") is MaskSpecAudioClassificationPipeline:
        return
    registry_logger = hf_logging.get_logger("transformers.pipelines.base")
    level = registry_logger.level
    registry_logger.setLevel(logging.ERROR)
    try:
        PIPELINE_REGISTRY.register_pipeline(
            TASK,
            pipeline_class=MaskSpecAudioClassificationPipeline,
            pt_model=current.get("pt") or None,
            default=current.get("default"),
            type=current.get("type", "audio"),
        )
    finally:
        registry_logger.setLevel(level)
    if "_registered_impl" in MaskSpecAudioClassificationPipeline.__dict__:
        del MaskSpecAudioClassificationPipeline._registered_impl


__all__ = ["TASK", "MaskSpecAudioClassificationPipeline", "register_pipeline"]
