# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Batch classification: the top-k labels of every audio file of a folder, or every row of a dataset split.

A long batch job must not die on the one corrupt file among thousands, nor lose what it finished when it is stopped:
a clip that cannot be read (corrupt, empty, NaN samples, too short) gets an error entry (CSV: the `error` column;
JSON: an `error` field instead of `predictions`) and is counted in the summary, and the output file is written even
when the run is interrupted. `classify` returns every entry; `maskspec-classify` (`maskspec_hf.cli.classify`) exits
with status 2 only when no clip at all could be classified. Clips go through `pipeline("audio-classification")`
(`maskspec_hf.pipeline`), so any length and any sampling rate work.
"""

import csv
import itertools
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..audio import ClipError, check_waveform, read_audio
from ..data.arguments import DataArguments
from ..data.loading import load_audio_split
from ..loading import ModelArguments, hub_options, load_config
from ..pipeline import TASK


logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma", ".webm")


@dataclass
class ClassifyArguments:
    """What to classify (files, or a dataset named by `DataArguments`), and where and how to write the labels."""

    output_file: str = field(metadata={"help": "Where to write the labels: .csv or .json."})
    inputs: list[str] | None = field(
        default=None,
        metadata={
            "help": "Audio files and/or folders (searched recursively); else the --eval_split_name split of "
            "--dataset_name / --data_dir / --data_files.",
            "nargs": "+",
        },
    )
    format: str | None = field(
        default=None, metadata={"help": "Output format (default: from the file suffix).", "choices": ["csv", "json"]}
    )
    top_k: int = field(default=5, metadata={"help": "Labels per clip."})
    batch_size: int = field(default=8, metadata={"help": "Clips per model call."})
    device: str | None = field(default=None, metadata={"help": "e.g. cpu, cuda, cuda:1 (default: cpu)."})
    dtype: str = field(
        default="float32", metadata={"help": "Model dtype.", "choices": ["float32", "bfloat16", "float16", "auto"]}
    )
    no_resample: bool = field(default=False, metadata={"help": "Fail on audio at another rate, don't resample."})
    no_progress: bool = field(default=False, metadata={"help": "Hide the progress bar."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow a model's own code (non-MaskSpec models)."}
    )


# ----------------------------------------------------------------------------------------------------------------------
# Inputs
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


def _load(value) -> dict:
    """`{"array", "sampling_rate"}` of a file or a dataset row's audio at its own rate (the pipeline resamples), or
    `ClipError`."""
    wave, rate = read_audio(value)
    return {"array": wave, "sampling_rate": rate}


def _file_clips(paths: list[str]) -> tuple[list, list[str]]:
    """Loaders and display names of the audio files among `paths` (relative to the folder when only one is given)."""
    files = find_audio_files(paths)
    roots = [Path(p) for p in paths]

    def display(path: Path) -> str:
        for root in roots:
            if root.is_dir() and path.is_relative_to(root):
                return str(path.relative_to(root)) if len(roots) == 1 else str(path)
        return str(path)

    return [lambda f=f: _load(f) for f in files], [display(f) for f in files]


def _dataset_clips(data_args: DataArguments, cache_dir=None, token=None) -> tuple[Iterator, list, str]:
    """Loaders, ids and id column name of the rows of the `eval_split_name` split (ids: the row index without
    `id_column_name`). Rows stay encoded until loaded, so a corrupt row fails alone, in its loader."""
    import datasets

    if data_args.streaming:
        raise ValueError("--streaming is for pre-training: maskspec-classify reads map-style data.")
    dataset = load_audio_split(data_args, split=data_args.eval_split_name, cache_dir=cache_dir, token=token)
    audio, id_column = data_args.audio_column_name, data_args.id_column_name
    for option, column in (("--audio_column_name", audio), ("--id_column_name", id_column)):
        if column is not None and column not in dataset.column_names:
            raise ValueError(
                f"{option} {column!r} is not a column of the dataset; available columns: {dataset.column_names}."
            )
    ids = list(dataset[id_column]) if id_column else list(range(len(dataset)))
    if isinstance(dataset.features.get(audio), datasets.Audio):
        dataset = dataset.cast_column(audio, datasets.Audio(decode=False))
    loaders = (lambda value=row[audio]: _load(value) for row in dataset.select_columns([audio]))
    return loaders, ids, id_column or "index"


# ----------------------------------------------------------------------------------------------------------------------
# Classifying
# ----------------------------------------------------------------------------------------------------------------------


def _checked(audio: dict, feature_extractor) -> dict:
    """`audio` if the pipeline can use it, else `ClipError`: NaN/Inf, empty, or shorter than one patch once
    resampled (checked here so that the message names the clip, not the extractor's "clip 0")."""
    if not isinstance(audio, dict):  # a decoder, a path, raw samples: the pipeline's own input checks apply
        return audio
    rate = audio.get("sampling_rate")
    if not rate:
        raise ClipError("decode_error", "the audio has no sampling rate")
    wave = audio["array"]
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


def _classifier(model_args: ModelArguments, classify_args: ClassifyArguments):
    """`pipeline("audio-classification")` for the model of `model_args` (config overrides: MaskSpec models only)."""
    from transformers import pipeline

    config = None
    if model_args.config_name or model_args.config_overrides:
        config = load_config(
            model_args.model_name_or_path,
            model_args.config_name,
            model_args.config_overrides,
            **hub_options(model_args),
        )
    dtype = classify_args.dtype if classify_args.dtype == "auto" else getattr(torch, classify_args.dtype)
    model_kwargs = {"cache_dir": model_args.cache_dir, "attn_implementation": model_args.attn_implementation}
    model_kwargs = {key: value for key, value in model_kwargs.items() if value}
    return pipeline(
        TASK,
        model=model_args.model_name_or_path,
        config=config,
        feature_extractor=model_args.feature_extractor_name,
        revision=model_args.model_revision,
        token=model_args.token,
        model_kwargs=model_kwargs or None,
        device=classify_args.device,
        dtype=dtype,
        trust_remote_code=classify_args.trust_remote_code,
        resample=not classify_args.no_resample,
    )


def classify(model_args: ModelArguments, data_args: DataArguments, classify_args: ClassifyArguments) -> list[dict]:
    """Classify every clip, write the results to `classify_args.output_file` (also when interrupted) and return
    them: `{"id", "predictions"}` per clip, `{"id", "error", "reason"}` per clip that could not be classified."""
    if not model_args.model_name_or_path:
        raise ValueError("--model_name_or_path is required: a classifier folder or Hub id.")
    if bool(classify_args.inputs) == (not data_args.uses_builtin_data()):
        raise ValueError(
            "Pass either --inputs (files/folders) or --dataset_name/--data_dir/--data_files, not both or neither."
        )
    if classify_args.top_k < 1 or classify_args.batch_size < 1:
        raise ValueError("--top_k and --batch_size must be positive.")
    if classify_args.inputs:  # before loading the model, so that a wrong path fails at once
        clips, ids = _file_clips(classify_args.inputs)
        id_name = "file"
    else:
        clips, ids, id_name = _dataset_clips(data_args, model_args.cache_dir, model_args.token)
    classifier = _classifier(model_args, classify_args)
    from tqdm.auto import tqdm

    entries = iter_classify(classifier, clips, ids, classify_args.top_k, classify_args.batch_size)
    results = []
    try:
        for entry in tqdm(entries, total=len(ids), disable=classify_args.no_progress, desc="Classifying"):
            results.append(entry)
    finally:  # an interrupted run still keeps what it finished
        path = write_predictions(results, classify_args.output_file, id_name=id_name, fmt=classify_args.format)
    failed = [r for r in results if "error" in r]
    print(f"Wrote the top-{classify_args.top_k} labels of {len(results) - len(failed)} clips to {path}")
    if failed:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(Counter(r["reason"] for r in failed).items()))
        print(f"Skipped {len(failed)} of {len(results)} clips ({reasons}); their errors are in {path}")
    return results


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


__all__ = [
    "AUDIO_EXTENSIONS",
    "ClassifyArguments",
    "classify",
    "find_audio_files",
    "iter_classify",
    "write_predictions",
]
