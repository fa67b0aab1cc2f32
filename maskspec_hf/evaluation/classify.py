# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Inference: the audio-classification pipeline with soxr resampling, encoder loading and a batch top-k command.

`import maskspec_hf` registers [`MaskSpecAudioClassificationPipeline`] as the implementation of transformers'
`"audio-classification"` task. For MaskSpec models (`config.model_type == "maskspec"`) it is transformers'
`AudioClassificationPipeline` with one change: audio passed as `{"array" | "raw": ..., "sampling_rate": ...}` (or a
torchcodec `AudioDecoder`) at another rate is resampled with soxr instead of torchaudio (which the built-in pipeline
needs and this project does not install), or, with `resample=False`, rejected with a clear error. Every input, at any
rate, goes through the feature extractor's checks on the samples as given (integer PCM, NaN, empty, stereo are
rejected with the same message whatever the rate). Every other model gets the built-in `AudioClassificationPipeline`
itself, exactly as without this package. Any length works: MaskSpec splits inputs longer than `config.max_frames`
(1000 frames = 10 s) into windows of that length overlapping by `config.inference_window_overlap` (50 %; the hop is
rounded down to whole 16-frame patches, 496 frames, and the last window ends flush with the clip) and averages the
windows' logits before the softmax/sigmoid. The model does this itself, so `model(...)`, `pipeline(...)` and
`Trainer.evaluate` agree. Shorter inputs, and clips padded to the longest one of a batch (`batch_size > 1`), are
masked out of attention and pooling, so padding does not change a clip's scores.

A folder saved with `save_pretrained` and loaded with `trust_remote_code=True` where this package is not installed
gets the built-in pipeline instead (files and same-rate arrays work the same; other rates then need torchaudio).

The command `maskspec-classify` (`python -m maskspec_hf.evaluation.classify`) writes the top-k labels of every audio file in a
folder, or every row of a dataset split, to CSV or JSON with a progress bar. A clip that cannot be read (corrupt,
empty, NaN samples, too short) does not stop the run: it gets an error entry (CSV: the `error` column; JSON: an
`error` field instead of `predictions`) and is counted in the summary. The command exits 0 when at least one clip was
classified and with status 2 when none could be (the output file, with every error, is written either way).
"""

import argparse
import csv
import itertools
import json
import logging
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.audio_classification import AudioClassificationPipeline
from transformers.utils import logging as hf_logging

from ..configuration_maskspec import MASKSPEC_PRESETS, MaskSpecConfig
from ..cli import run_console_script
from ..data import ClipError, check_waveform
from ..feature_extraction_maskspec import MaskSpecFeatureExtractor
from ..modeling_maskspec import MaskSpecModel


logger = hf_logging.get_logger(__name__)

TASK = "audio-classification"
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma", ".webm")


# ----------------------------------------------------------------------------------------------------------------------
# Pipeline
# ----------------------------------------------------------------------------------------------------------------------


def resample_audio(waveform: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample a 1-D float waveform with soxr (high quality), keeping its float dtype; a no-op at the same rate.

    Integer PCM is rejected rather than cast: cast without scaling, int16 audio is 32768 times too loud."""
    waveform = np.asarray(waveform)
    if waveform.dtype.kind != "f":
        raise ValueError(
            f"resample_audio expects a float waveform in [-1, 1], got dtype {waveform.dtype}: convert it first, e.g. "
            "`audio.astype(np.float32) / 32768` for int16 PCM."
        )
    if int(orig_rate) == int(target_rate):
        return waveform
    import soxr

    return soxr.resample(waveform, int(orig_rate), int(target_rate))


def _decoder_to_dict(decoder) -> dict:
    """torchcodec `AudioDecoder` -> `{"array": mono float32 numpy, "sampling_rate": int}` (channels averaged)."""
    samples = decoder.get_all_samples()
    data = samples.data
    if data.ndim == 2:
        data = data.mean(dim=0)
    return {"array": data.numpy().astype(np.float32, copy=False), "sampling_rate": int(samples.sample_rate)}


def _is_maskspec(model) -> bool:
    return getattr(getattr(model, "config", None), "model_type", None) == "maskspec"


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
        if (torchcodec := sys.modules.get("torchcodec")) is not None and isinstance(
            inputs, torchcodec.decoders.AudioDecoder
        ):
            inputs = _decoder_to_dict(inputs)
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


def _first_line(error: Exception) -> str:
    message = f"{type(error).__name__}: {error}".strip()
    return message.splitlines()[0][:300]


def _decode(source) -> dict:
    """`{"array", "sampling_rate"}` of an encoded file (path or bytes) at its own rate, or a `ClipError`."""
    from torchcodec.decoders import AudioDecoder

    try:
        return _decoder_to_dict(AudioDecoder(source))
    except Exception as error:  # noqa: BLE001 - torchcodec raises several types for unreadable files
        if "No audio frames were decoded" in str(error):  # a valid container without samples
            raise ClipError("empty", "the file holds no audio samples") from error
        raise ClipError("decode_error", f"cannot decode it as audio ({_first_line(error)})") from error


def _read_file(path: Path) -> dict:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ClipError("decode_error", f"cannot read it ({_first_line(error)})") from error
    if size == 0:
        raise ClipError("empty", "the file is empty (0 bytes)")
    return _decode(str(path))


def _read_row_audio(value) -> dict:
    """The audio of one dataset row (encoded `{"bytes", "path"}`, decoded `{"array", ...}` or a decoder)."""
    if hasattr(value, "get_all_samples"):
        return _decoder_to_dict(value)
    if isinstance(value, dict) and "array" in value:
        return {"array": np.asarray(value["array"]), "sampling_rate": value.get("sampling_rate")}
    if isinstance(value, dict) and value.get("bytes") is not None:
        if len(value["bytes"]) == 0:
            raise ClipError("empty", "the audio is empty (0 bytes)")
        return _decode(value["bytes"])
    if isinstance(value, dict) and value.get("path"):
        return _read_file(Path(value["path"]))
    raise ClipError("decode_error", f"the audio column holds no audio (got {type(value).__name__})")


def _dataset_clips(dataset, audio_column: str) -> Iterator:
    """One loader per row; rows stay encoded until loaded, so a corrupt row fails alone, in its loader."""
    import datasets

    if isinstance(dataset.features.get(audio_column), datasets.Audio):
        dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))
    for row in dataset.select_columns([audio_column]):
        yield lambda value=row[audio_column]: _read_row_audio(value)


def _checked(audio: dict, feature_extractor) -> dict:
    """`audio` if the pipeline can use it, else `ClipError`: NaN/Inf, empty, or shorter than one patch once
    resampled (checked here so that the message names the clip, not the extractor's "clip 0")."""
    if not isinstance(audio, dict):  # a decoder, a path, raw samples: the pipeline's own input checks apply
        return audio
    rate = audio.get("sampling_rate")
    if not rate:
        raise ClipError("decode_error", "the audio has no sampling rate")
    wave = np.asarray(audio["array"])
    minimum = getattr(feature_extractor, "min_num_samples", 1)
    target = getattr(feature_extractor, "sampling_rate", rate)
    if wave.dtype.kind == "f":
        check_waveform(wave, math.ceil(minimum * rate / target))
    return audio


def _predict(classifier, clips: list, top_k: int, batch_size: int) -> list:
    """The pipeline's predictions for `clips`, or, for a clip the pipeline rejects, the `ClipError` that says why
    (a batch that fails is retried clip by clip, so one bad clip costs only itself)."""
    if not clips:
        return []
    try:
        return list(classifier(clips, top_k=top_k, batch_size=batch_size))
    except ValueError as error:
        if len(clips) == 1:
            return [ClipError("invalid_audio", str(error).splitlines()[0])]
    outcomes = []
    for clip in clips:
        try:
            outcomes.append(classifier(clip, top_k=top_k))
        except ValueError as error:
            outcomes.append(ClipError("invalid_audio", str(error).splitlines()[0]))
    return outcomes


def iter_classify(classifier, clips: Iterable, ids: list, top_k: int = 5, batch_size: int = 1) -> Iterator[dict]:
    """Yields `{"id", "predictions": [{"label", "score"}]}`, or `{"id", "error", "reason"}` for a clip that cannot be
    read or classified, for each of `clips` (`{"array", "sampling_rate"}` dicts, or callables returning them, which
    may raise `ClipError`), in order."""
    pending = zip(ids, clips)  # lazily: a dataset's rows are read one batch at a time
    while chunk := list(itertools.islice(pending, batch_size)):
        entries, good = [], []
        for identifier, load in chunk:
            try:
                audio = load() if callable(load) else load
                good.append((len(entries), _checked(audio, classifier.feature_extractor)))
                entries.append({"id": identifier})
            except ClipError as error:
                entries.append(_error_entry(identifier, error))
        outcomes = _predict(classifier, [audio for _, audio in good], top_k, batch_size)
        for (slot, _), outcome in zip(good, outcomes):
            if isinstance(outcome, ClipError):
                entries[slot] = _error_entry(entries[slot]["id"], outcome)
            else:
                entries[slot]["predictions"] = outcome
        yield from entries


def _error_entry(identifier, error: ClipError) -> dict:
    logger.warning(f"Skipping {identifier}: {error.reason} ({error})")
    return {"id": identifier, "error": str(error), "reason": error.reason}


def classify(classifier, clips: Iterable, ids: list, top_k: int = 5, batch_size: int = 1, progress: bool = True):
    """`list(iter_classify(...))` with a progress bar."""
    from tqdm.auto import tqdm

    entries = iter_classify(classifier, clips, ids, top_k=top_k, batch_size=batch_size)
    return list(tqdm(entries, total=len(ids), disable=not progress, desc="Classifying"))


def write_predictions(results: list[dict], output: str | Path, id_name: str = "id", fmt: str | None = None) -> Path:
    """Write `classify` results as CSV (`id, label_1, score_1, ..., label_k, score_k`, plus an `error` column when a
    clip failed) or JSON (a list; a failed clip has `error` and `reason` instead of `predictions`)."""
    output = Path(output)
    fmt = fmt or ("json" if output.suffix.lower() == ".json" else "csv")
    if fmt not in ("csv", "json"):
        raise ValueError(f"Unknown output format {fmt!r}: choose csv or json.")
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        rows = [{id_name: r["id"], **{k: v for k, v in r.items() if k != "id"}} for r in results]
        output.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return output
    k = max((len(r.get("predictions", ())) for r in results), default=0)
    failed = any("error" in r for r in results)
    with output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        header = [id_name] + [f"{name}_{i}" for i in range(1, k + 1) for name in ("label", "score")]
        writer.writerow(header + (["error"] if failed else []))
        for r in results:
            cells = [r["id"]]
            for p in r.get("predictions", ()):
                cells += [p["label"], f"{p['score']:.6f}"]
            if failed:
                error = f"{r['reason']}: {r['error']}" if "error" in r else ""
                cells += [""] * (len(header) - len(cells)) + [error]
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


def _file_clips(paths: list[str]) -> tuple[list, list[str]]:
    """Loaders and display names of the audio files among `paths` (relative to the folder when only one is given)."""
    files = find_audio_files(paths)
    roots = [Path(p) for p in paths]

    def display(path: Path) -> str:
        for root in roots:
            if root.is_dir() and path.is_relative_to(root):
                return str(path.relative_to(root)) if len(roots) == 1 else str(path)
        return str(path)

    return [lambda f=f: _read_file(f) for f in files], [display(f) for f in files]


def _split_clips(args) -> tuple[Iterator, list, str]:
    """Loaders, ids and id column name of the rows of a dataset split."""
    from ..training.finetuning import DataTrainingArguments, load_splits

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
        return _dataset_clips(dataset, args.audio_column_name), list(dataset[args.id_column_name]), args.id_column_name
    return _dataset_clips(dataset, args.audio_column_name), list(range(len(dataset))), "index"


def main(argv: list[str] | None = None) -> list[dict]:
    """Classify and write the results; returns them (failed clips as `{"id", "error", "reason"}` entries).

    Raises a `ValueError` (after writing the file) when no clip at all could be classified."""
    args = build_arg_parser().parse_args(argv)
    if bool(args.inputs) == bool(args.dataset_name or args.data_dir):
        raise ValueError("Pass either --inputs (files/folders) or --dataset_name/--data_dir, not both or neither.")
    if args.top_k < 1 or args.batch_size < 1:
        raise ValueError("--top_k and --batch_size must be positive.")
    if args.inputs:  # before loading the model, so that a wrong path fails at once
        clips, ids = _file_clips(args.inputs)
        id_name = "file"
    else:
        clips, ids, id_name = _split_clips(args)
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
    from tqdm.auto import tqdm

    results = []
    entries = iter_classify(classifier, clips, ids, top_k=args.top_k, batch_size=args.batch_size)
    try:
        for entry in tqdm(entries, total=len(ids), disable=args.no_progress, desc="Classifying"):
            results.append(entry)
    finally:  # an interrupted run still keeps what it finished
        path = write_predictions(results, args.output_file, id_name=id_name, fmt=args.format)
    failed = [r for r in results if "error" in r]
    print(f"Wrote the top-{args.top_k} labels of {len(results) - len(failed)} clips to {path}")
    if failed:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(Counter(r["reason"] for r in failed).items()))
        print(f"Skipped {len(failed)} of {len(results)} clips ({reasons}); their errors are in {path}")
    if results and len(failed) == len(results):
        raise ValueError(f"None of the {len(results)} clips could be classified (e.g. {failed[0]['id']}: "
                         f"{failed[0]['error']}); the errors are in {path}.")
    return results


def cli(argv: list[str] | None = None) -> int:
    """The `maskspec-classify` console script: exit status 0, or 2 with a one-line message."""
    return run_console_script(main, argv, prog="maskspec-classify")


# Importing this module (as `import maskspec_hf` does) installs the pipeline for the task.
register_pipeline()

__all__ = [
    "MaskSpecAudioClassificationPipeline",
    "classify",
    "cli",
    "find_audio_files",
    "iter_classify",
    "load_encoder",
    "load_feature_extractor",
    "main",
    "register_pipeline",
    "resample_audio",
    "write_predictions",
]


if __name__ == "__main__":
    sys.exit(cli())
