# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""The on-disk cache of the built-in synthetic corpus (`maskspec_hf.data.synthetic`): one folder of 16-bit WAV files
and a manifest per set of parameters, filled under a temporary name and renamed when complete."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf


_MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"


def default_cache_dir() -> Path:
    """`$MASKSPEC_HF_CACHE/synthetic`, else `~/.cache/maskspec_hf/synthetic` (following `$XDG_CACHE_HOME`)."""
    if "MASKSPEC_HF_CACHE" in os.environ:
        return Path(os.environ["MASKSPEC_HF_CACHE"]) / "synthetic"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "maskspec_hf" / "synthetic"


def _write_clips(
    synthesize: Callable, directory: str, indices: Sequence[int], seed: int, clip_seconds: float, sampling_rate: int
) -> list:
    """Worker: write the clips `indices` as 16-bit WAV files into `directory` and return their metadata."""
    metas = []
    for index in indices:
        wave, meta = synthesize(index, seed, clip_seconds, sampling_rate)
        # Encode in memory: writing through libsndfile directly fsyncs every file, which makes the disk the bottleneck.
        buffer = io.BytesIO()
        sf.write(buffer, wave, sampling_rate, format="WAV", subtype="PCM_16")
        Path(directory, f"{meta['video_id']}.wav").write_bytes(buffer.getbuffer())
        metas.append(meta)
    return metas


def _read_manifest(directory: Path, params: dict) -> dict | None:
    """The manifest of a complete cache folder with these parameters, else None."""
    try:
        manifest = json.loads((directory / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("params") != params:
        return None
    if not all((directory / f"{clip['video_id']}.wav").is_file() for clip in manifest["clips"]):
        return None
    return manifest


def _default_num_proc(num_clips: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # Starting workers costs more than a few dozen clips take to generate.
    return max(1, min(cpus, 8, num_clips // 32))


def _generate(synthesize: Callable, directory: Path, params: dict, indices: list[int], num_proc: int) -> None:
    """Write all clips and then the manifest (last, so its presence means the folder is complete)."""
    write = functools.partial(
        _write_clips,
        synthesize,
        str(directory),
        seed=params["seed"],
        clip_seconds=params["clip_seconds"],
        sampling_rate=params["sampling_rate"],
    )
    if num_proc <= 1:
        metas = write(indices)
    else:
        # Several chunks per worker keep the load balanced; fork avoids re-importing the package in every worker.
        chunk = max(1, -(-len(indices) // (4 * num_proc)))
        chunks = [indices[i : i + chunk] for i in range(0, len(indices), chunk)]
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(num_proc, mp_context=context) as pool:
            metas = [meta for result in pool.map(write, chunks) for meta in result]
    manifest = {"params": params, "clips": metas}
    (directory / _MANIFEST).write_text(json.dumps(manifest))


def cached_clips(
    synthesize: Callable,
    params: dict,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
) -> tuple[Path, list[dict]]:
    """The folder holding clips `start_index .. start_index + num_clips - 1` of `params` and their metadata, written
    with `synthesize(index, seed, clip_seconds, sampling_rate) -> (wave, meta)` unless a complete folder with the same
    parameters exists already. The folder is named after a hash of `params` under `cache_dir` (default:
    `default_cache_dir()`); an interrupted run is never taken for a finished one."""
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = root / f"sound-events-{key}"
    manifest = _read_manifest(directory, params)
    if manifest is None:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f"{_TMP_PREFIX}{directory.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            start, count = params["start_index"], params["num_clips"]
            indices = list(range(start, start + count))
            _generate(synthesize, tmp, params, indices, num_proc if num_proc is not None else _default_num_proc(count))
            if directory.exists() and _read_manifest(directory, params) is None:
                shutil.rmtree(directory, ignore_errors=True)  # damaged or from an older version of the generator
            try:
                os.replace(tmp, directory)
            except OSError:
                pass  # another process finished the same corpus first; its folder is just as good
            manifest = _read_manifest(directory, params)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if manifest is None:
            raise RuntimeError(f"Could not write the synthetic corpus to {directory}.")
    return directory, manifest["clips"]
