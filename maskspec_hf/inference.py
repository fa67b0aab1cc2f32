# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Inference: the audio-classification pipeline with soxr resampling, encoder loading and a batch top-k command.

`import maskspec_hf` registers [`MaskSpecAudioClassificationPipeline`] as the implementation of transformers'
`"audio-classification"` task, so `pipeline("audio-classification", model=...)` returns it for every model. It is
transformers' `AudioClassificationPipeline` with one change: audio passed as `{"array" | "raw": ..., "sampling_rate":
...}` (or a torchcodec `AudioDecoder`) at another rate is resampled with soxr instead of torchaudio (which the built-in
pipeline needs and this project does not install), or, with `resample=False`, rejected with a clear error. Everything
else, including the behaviour for non-MaskSpec models, is the built-in pipeline's. Any length works: MaskSpec splits
inputs longer than `config.max_frames` (1000 frames = 10 s) into windows of that length overlapping by
`config.inference_window_overlap` (50 %; the hop is rounded down to whole 16-frame patches, 496 frames, and the last
window ends flush with the clip) and averages the windows' logits before the softmax/sigmoid. The model does this
itself, so `model(...)`, `pipeline(...)` and `Trainer.evaluate` agree. Shorter inputs, and clips padded to the longest
one of a batch (`batch_size > 1`), are masked out of attention and pooling, so padding does not change a clip's
scores.

A folder saved with `save_pretrained` and loaded with `trust_remote_code=True` where this package is not installed
gets the built-in pipeline instead (files and same-rate arrays work the same; other rates then need torchaudio).

The command `maskspec-classify` (`python -m maskspec_hf.inference`) writes the top-k labels of every audio file in a
folder, or every row of a dataset split, to CSV or JSON with a progress bar.
"""

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.audio_classification import AudioClassificationPipeline
from transformers.utils import logging as hf_logging

from .configuration_maskspec import MASKSPEC_PRESETS, MaskSpecConfig
from .feature_extraction_maskspec import MaskSpecFeatureExtractor
from .modeling_maskspec import MaskSpecModel


logger = hf_logging.get_logger(__name__)

TASK = "audio-classification"
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma", ".webm")


# ----------------------------------------------------------------------------------------------------------------------
# Pipeline
# ----------------------------------------------------------------------------------------------------------------------


def resample_audio(waveform: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample a 1-D waveform with soxr (high quality), keeping its float dtype; a no-op at the same rate."""
    if int(orig_rate) == int(target_rate):
        return waveform
    import soxr

    if waveform.dtype not in (np.float32, np.float64):
        waveform = waveform.astype(np.float32)
    return soxr.resample(waveform, int(orig_rate), int(target_rate))


def _decoder_to_dict(decoder) -> dict:
    """torchcodec `AudioDecoder` -> `{"array": mono float32 numpy, "sampling_rate": int}` (channels averaged)."""
    samples = decoder.get_all_samples()
    data = samples.data
    if data.ndim == 2:
        data = data.mean(dim=0)
    return {"array": data.numpy().astype(np.float32, copy=False), "sampling_rate": int(samples.sample_rate)}


class MaskSpecAudioClassificationPipeline(AudioClassificationPipeline):
    """transformers' `AudioClassificationPipeline`, resampling with soxr instead of torchaudio.

    Extra argument (at construction or per call):
        resample (`bool`, *optional*, defaults to `True`): resample `{"array"/"raw", "sampling_rate"}` inputs and
            audio decoders whose rate differs from the feature extractor's with soxr. With `False` such inputs raise
            a `ValueError` naming both rates.

    Multi-channel torchcodec `AudioDecoder` inputs are averaged to mono. Everything else is inherited unchanged.
    """

    def _sanitize_parameters(self, top_k=None, function_to_apply=None, resample=None, **kwargs):
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(
            top_k=top_k, function_to_apply=function_to_apply, **kwargs
        )
        if resample is not None:
            preprocess_params["resample"] = bool(resample)
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, inputs, resample: bool = True):
        if (torchcodec := sys.modules.get("torchcodec")) is not None and isinstance(
            inputs, torchcodec.decoders.AudioDecoder
        ):
            inputs = _decoder_to_dict(inputs)
        if isinstance(inputs, dict) and "sampling_rate" in inputs and ("raw" in inputs or "array" in inputs):
            inputs = self._resampled(inputs, resample)
        return super().preprocess(inputs)

    def _resampled(self, inputs: dict, resample: bool) -> np.ndarray:
        audio = inputs["raw"] if inputs.get("raw") is not None else inputs.get("array")
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        audio = np.asarray(audio)
        rate, target = int(inputs["sampling_rate"]), int(self.feature_extractor.sampling_rate)
        if rate == target:
            return audio
        if not resample:
            raise ValueError(
                f"The audio is sampled at {rate} Hz but the model expects {target} Hz, and resampling is turned off "
                f"(resample=False): resample it first, e.g. dataset.cast_column('audio', "
                f"datasets.Audio(sampling_rate={target})), or leave resample=True to resample with soxr."
            )
        if audio.ndim != 1:
            raise ValueError(
                f"We expect a single channel audio input for AudioClassificationPipeline, got shape {audio.shape}: "
                "downmix it first, e.g. audio.mean(axis=0) for channels-first audio."
            )
        return resample_audio(audio, rate, target)


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


# ----------------------------------------------------------------------------------------------------------------------
# Loading an encoder (HEAR, linear probe)
# ----------------------------------------------------------------------------------------------------------------------


def is_preset_name(name: str) -> bool:
    """True for "tiny"/"small"/"base" (optionally "maskspec-" prefixed) that is not an existing local path."""
    return (
        isinstance(name, str)
        and name.lower().removeprefix("maskspec-") in MASKSPEC_PRESETS
        and not os.path.exists(name)
    )


def load_feature_extractor(source: str | None, **kwargs) -> MaskSpecFeatureExtractor:
    """The feature extractor saved with `source`, or the default one (PaSST's front end) when it has none."""
    if source is None or is_preset_name(source):
        return MaskSpecFeatureExtractor()
    try:
        return MaskSpecFeatureExtractor.from_pretrained(source, **kwargs)
    except OSError:
        logger.warning(f"No preprocessor_config.json in {source}: using the default MaskSpecFeatureExtractor.")
        return MaskSpecFeatureExtractor()


def load_encoder(
    source: str,
    random_init: bool = False,
    seed: int = 0,
    config_overrides: dict | None = None,
    **kwargs,
) -> tuple[MaskSpecModel, MaskSpecFeatureExtractor]:
    """The MaskSpec encoder (no decoder, no head) of any `from_pretrained` source, and its feature extractor.

    `source` is a folder or Hub id of a pre-training, classification or encoder checkpoint, or a preset name
    ("tiny"/"small"/"base", randomly initialized). With `random_init=True` the source's config is used with fresh
    weights (seeded by `seed`): the baseline a pre-trained encoder is compared with. The decoder and classification
    head of a checkpoint are dropped without a load report; encoder weights missing from the checkpoint raise a
    `ValueError` (a wrong checkpoint must not silently give random features).
    """
    config_overrides = config_overrides or {}
    if is_preset_name(source):
        config = MaskSpecConfig.from_preset(source, **config_overrides)
        random_init = True
    else:
        config = MaskSpecConfig.from_pretrained(source, **config_overrides, **kwargs)
    feature_extractor = load_feature_extractor(source, **kwargs)
    if random_init:
        torch.manual_seed(seed)
        return MaskSpecModel(config).eval(), feature_extractor

    with quiet_load_report():
        model, info = MaskSpecModel.from_pretrained(source, config=config, output_loading_info=True, **kwargs)
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
    return model.eval(), feature_extractor


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


# ----------------------------------------------------------------------------------------------------------------------
# Batch command
# ----------------------------------------------------------------------------------------------------------------------


def find_audio_files(paths: list[str]) -> list[Path]:
    """Audio files among `paths` (files kept as given, folders searched recursively), sorted within each folder."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise ValueError(f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) found under {path}.")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"Input {path} does not exist.")
    return files


def _decode_file(path: Path) -> dict:
    from torchcodec.decoders import AudioDecoder

    try:
        return _decoder_to_dict(AudioDecoder(str(path)))
    except Exception as error:  # torchcodec raises RuntimeError/ValueError subclasses for unreadable files
        raise ValueError(f"Cannot decode {path} as audio: {error}") from error


def _dataset_inputs(dataset, audio_column: str) -> Iterator[dict]:
    for row in dataset.select_columns([audio_column]):
        audio = row[audio_column]
        if hasattr(audio, "get_all_samples"):
            yield _decoder_to_dict(audio)
        elif isinstance(audio, dict) and "array" in audio:
            yield {"array": np.asarray(audio["array"], dtype=np.float32), "sampling_rate": audio["sampling_rate"]}
        else:
            raise ValueError(f"Column {audio_column!r} does not hold decoded audio (got {type(audio).__name__}).")


def classify(
    classifier,
    inputs: Iterator,
    ids: list,
    top_k: int = 5,
    batch_size: int = 1,
    progress: bool = True,
) -> list[dict]:
    """Run `classifier` over `inputs` (one per id) and return `[{"id": ..., "predictions": [{"label", "score"}]}]`."""
    from tqdm.auto import tqdm

    results = []
    outputs = classifier(inputs, top_k=top_k, batch_size=batch_size)
    for identifier, predictions in tqdm(zip(ids, outputs), total=len(ids), disable=not progress, desc="Classifying"):
        results.append({"id": identifier, "predictions": predictions})
    return results


def write_predictions(results: list[dict], output: str | Path, id_name: str = "id", fmt: str | None = None) -> Path:
    """Write `classify` results as CSV (`id, label_1, score_1, ..., label_k, score_k`) or JSON (a list)."""
    output = Path(output)
    fmt = fmt or ("json" if output.suffix.lower() == ".json" else "csv")
    if fmt not in ("csv", "json"):
        raise ValueError(f"Unknown output format {fmt!r}: choose csv or json.")
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        rows = [{id_name: r["id"], "predictions": r["predictions"]} for r in results]
        output.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return output
    k = max((len(r["predictions"]) for r in results), default=0)
    with output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([id_name] + [f"{name}_{i}" for i in range(1, k + 1) for name in ("label", "score")])
        for r in results:
            cells = [r["id"]]
            for p in r["predictions"]:
                cells += [p["label"], f"{p['score']:.6f}"]
            writer.writerow(cells)
    return output


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskspec-classify",
        description="Top-k audio-classification labels for a folder of audio files or a dataset split, as CSV/JSON.",
    )
    parser.add_argument("--model_name_or_path", "--model", required=True, help="Folder or Hub id of a classifier.")
    source = parser.add_argument_group("inputs (give --inputs, or --dataset_name / --data_dir)")
    source.add_argument("--inputs", nargs="+", help="Audio files and/or folders (searched recursively).")
    source.add_argument("--dataset_name", help="A datasets name or a folder saved with save_to_disk.")
    source.add_argument("--dataset_config_name")
    source.add_argument("--data_dir", help="With --dataset_name: its data_dir; alone: an audiofolder.")
    source.add_argument("--split", default="test", help="Dataset split to classify (default: test).")
    source.add_argument("--audio_column_name", default="audio")
    source.add_argument("--id_column_name", help="Dataset column identifying rows (default: the row index).")
    parser.add_argument("--output_file", "--output", required=True, help="Where to write: .csv or .json.")
    parser.add_argument("--format", choices=("csv", "json"), help="Output format (default: from the file suffix).")
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cpu).")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16", "auto"))
    parser.add_argument("--no_resample", action="store_true", help="Fail on audio at another rate, don't resample.")
    parser.add_argument("--trust_remote_code", action="store_true")
    parser.add_argument("--no_progress", action="store_true", help="Hide the progress bar.")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_arg_parser().parse_args(argv)
    if bool(args.inputs) == bool(args.dataset_name or args.data_dir):
        raise ValueError("Pass either --inputs (files/folders) or --dataset_name/--data_dir, not both or neither.")
    if args.top_k < 1 or args.batch_size < 1:
        raise ValueError("--top_k and --batch_size must be positive.")
    from transformers import pipeline

    dtype = args.dtype if args.dtype == "auto" else getattr(torch, args.dtype)
    classifier = pipeline(
        TASK,
        model=args.model_name_or_path,
        device=args.device,
        dtype=dtype,
        trust_remote_code=args.trust_remote_code,
        resample=not args.no_resample,
    )

    if args.inputs:
        files = find_audio_files(args.inputs)
        roots = [Path(p) for p in args.inputs]

        def display(path: Path) -> str:
            for root in roots:
                if root.is_dir() and path.is_relative_to(root):
                    return str(path.relative_to(root)) if len(roots) == 1 else str(path)
            return str(path)

        ids, id_name = [display(f) for f in files], "file"
        inputs = (_decode_file(f) for f in files)
    else:
        from .finetuning import DataTrainingArguments, load_splits

        data_args = DataTrainingArguments(
            dataset_name=args.dataset_name,
            dataset_config_name=args.dataset_config_name,
            data_dir=args.data_dir,
            eval_split_name=args.split,
            audio_column_name=args.audio_column_name,
            label_column_name=None,
        )
        dataset = load_splits(data_args, need_train=False, need_eval=True)["eval"]
        if args.id_column_name:
            if args.id_column_name not in dataset.column_names:
                raise ValueError(
                    f"--id_column_name {args.id_column_name!r} is not a column of the dataset; available columns: "
                    f"{dataset.column_names}."
                )
            ids, id_name = list(dataset[args.id_column_name]), args.id_column_name
        else:
            ids, id_name = list(range(len(dataset))), "index"
        inputs = _dataset_inputs(dataset, args.audio_column_name)

    results = classify(
        classifier, inputs, ids, top_k=args.top_k, batch_size=args.batch_size, progress=not args.no_progress
    )
    path = write_predictions(results, args.output_file, id_name=id_name, fmt=args.format)
    print(f"Wrote the top-{args.top_k} labels of {len(results)} clips to {path}")
    return results


# Importing this module (as `import maskspec_hf` does) installs the pipeline for the task.
register_pipeline()

__all__ = [
    "MaskSpecAudioClassificationPipeline",
    "classify",
    "find_audio_files",
    "load_encoder",
    "load_feature_extractor",
    "main",
    "register_pipeline",
    "resample_audio",
    "write_predictions",
]


if __name__ == "__main__":
    main()
