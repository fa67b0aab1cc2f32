# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Decoding a clip: `maskspec_hf.audio.decode_audio` (libsndfile + soxr) and `decode_audio_window` (only the 2.08 s
training crop of tiny-cpu.json, what pre-training decodes) against FFmpeg through `datasets.Audio` (torchcodec, what
the package used before), side by side in one process, one thread (as in a DataLoader worker).

    python benchmarks/decode.py [--clips 64] [--reps 5] [--json out.json]

Two kinds of file: 3 s WAV at 32 kHz (the real-audio benchmark's corpus, `real_audio.py`) and 10 s FLAC at 48 kHz
(AudioSet's format on the Hub), written from the built-in synthetic corpus. For scale, the feature extractor's CPU time
on the same clips (2.08 s crops, tiny-cpu.json's) is printed too: decode + features is a data loader's work per clip.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402

from maskspec_hf import MaskSpecFeatureExtractor, audio  # noqa: E402
from maskspec_hf.data.synthetic import synthesize_clip  # noqa: E402


CROP = 66560  # tiny-cpu.json's 2.08 s at 32 kHz
KINDS = {"WAV 32 kHz, 3 s": ("WAV", 32000, 3.0), "FLAC 48 kHz, 10 s": ("FLAC", 48000, 10.0)}


def ffmpeg_decode(path: str) -> object:
    """The FFmpeg path of `decode_audio` (datasets' `Audio`, torchcodec, resampling in FFmpeg), as it was used alone."""
    return audio._from_decoder(audio._decoder_of({"path": path, "bytes": None}, 32000), 32000)[0]


def main() -> None:
    import soundfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    extractor, rows = MaskSpecFeatureExtractor(), []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, (fmt, rate, seconds) in KINDS.items():
            paths = []
            for i in range(args.clips):
                wave, _ = synthesize_clip(i, seed=2, clip_seconds=seconds, sampling_rate=rate)
                paths.append(os.path.join(tmp, f"{fmt}{i:03d}.{fmt.lower()}"))
                soundfile.write(paths[-1], wave, rate, format=fmt, subtype="PCM_16")
            fns = {
                "crop": lambda paths=paths: [
                    audio.decode_audio_window(p, 32000, CROP, np.random.default_rng(i)) for i, p in enumerate(paths)
                ],
                "whole": lambda paths=paths: [audio.decode_audio(p, 32000) for p in paths],
                "ffmpeg": lambda paths=paths: [ffmpeg_decode(p) for p in paths],
            }
            timings = run.alternate(fns, reps=args.reps, warmup=1)
            crops = fns["crop"]()
            start = time.process_time()
            extractor(crops, sampling_rate=32000, return_tensors="pt")
            ms = {name: 1000 * run.median(timings.cpu[name]) / args.clips for name in fns}
            ms["features"] = 1000 * (time.process_time() - start) / args.clips
            rows.append({"kind": kind, **{f"{name}_ms": value for name, value in ms.items()}})
    run.log(f"{run._cpu_info()[0]}, 1 thread, torch {torch.__version__}; {args.clips} clips, {args.reps} rounds")
    print("CPU ms per clip; crop = tiny-cpu.json's 2.08 s; × = FFmpeg whole clip / ours crop")
    print(
        "| file | ours, crop | ours, whole clip | FFmpeg via datasets.Audio, whole clip | × | features of the crop |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = (
            f"{r['crop_ms']:.2f} | {r['whole_ms']:.2f} | {r['ffmpeg_ms']:.2f} | {r['ffmpeg_ms'] / r['crop_ms']:.1f}"
        )
        print(f"| {r['kind']} | {cells} | {r['features_ms']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(["python"] + sys.argv), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
