# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Task C, `sound_events`: recorded sound effects, a kind of sound that neither speech nor instrument tasks cover.

10-way classification of single sound events (footsteps, wood chopping, pickaxe, hammering, sword clashes, arrow hits,
shield hits, weapon swings, animal calls, human cries) recorded as Foley for the game 0 A.D. (Debian package
`0ad-data`, 1.4 GB; nothing else of it is used, and `real_audio.py`'s pre-training corpus never hears it). Each source
file is one take; the takes of a class are split by take group (a take and its `a`/`b` variants stay together), one
group in three to test, so every test clip comes from a recording that train never heard. Each 2 s clip holds one
event at a random offset and peak level; longer takes are cropped at random.

CLI: `python benchmarks/sound_events.py --out_dir DIR` (the same cache folder as `real_audio.py`'s).
"""

from __future__ import annotations

import argparse
import re
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import real_audio


ARCHIVE = "/usr/share/games/0ad/mods/public/public.zip"
REQUIREMENTS = [("0ad-data", ARCHIVE)]
# Class: the archive members it takes (a regular expression matched at the start of the member's path).
SOUND_EVENT_CLASSES = {
    "footstep": r"audio/actor/singlesteps/fs_",
    "wood_chop": r"audio/resource/lumbering/lumber_tree_\d",
    "pickaxe": r"audio/resource/mining/mine_(metal|stone)_",
    "hammer": r"audio/resource/construction/con_(wood|stone)_",
    "sword_clash": r"audio/attack/weapon/swordhit_",
    "arrow_hit": r"audio/attack/impact/arrow_",
    "shield_hit": r"audio/attack/impact/shield_",
    "weapon_swing": r"audio/attack/weapon/(sword|spear|pike|jav)_attack_",
    "animal_call": r"audio/actor/fauna/animal/",
    "human_cry": r"audio/actor/human/death/",
}
TEST_GROUP_EVERY = 3  # one take group in three goes to test


def take_group(member: str) -> str:
    """A take's group: its name without a trailing variant letter (`swordhit_12b.ogg` -> `swordhit_12`)."""
    return re.sub(r"(\d)[a-z]$", r"\1", PurePosixPath(member).stem)


def split_members(members: list[str]) -> dict[str, dict[str, list[str]]]:
    """{split: {class: archive members}}: each class's take groups in name order, every `TEST_GROUP_EVERY`-th
    (starting from the second) to test."""
    out = {"train": {}, "test": {}}
    for name, pattern in SOUND_EVENT_CLASSES.items():
        chosen = sorted(m for m in members if m.endswith(".ogg") and re.match(pattern, m))
        groups = sorted({(str(PurePosixPath(m).parent), take_group(m)) for m in chosen})
        test_groups = {g for i, g in enumerate(groups) if i % TEST_GROUP_EVERY == 1}
        for split in ("train", "test"):
            out[split][name] = [
                m
                for m in chosen
                if ((str(PurePosixPath(m).parent), take_group(m)) in test_groups) == (split == "test")
            ]
    return out


def _event_clip(event: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of `num_samples` holding `event` (trimmed of silence) at a random offset, or a random crop of it
    that is not silent, at a random peak level."""
    event = real_audio._trim(event)
    for _ in range(8):  # a long take (an animal's calls) can have a silent stretch: crop again
        clip = real_audio._place(event, num_samples, rng)
        if not real_audio._is_silent(clip):
            break
    return real_audio._set_peak(clip, rng)


def _job_sound_events(directory: str, job: dict) -> list[dict]:
    """`clips_per_file` clips of each member of `job["members"]` ([class, member] pairs)."""
    num_samples = int(round(job["clip_seconds"] * real_audio.SAMPLING_RATE))
    labels = list(SOUND_EVENT_CLASSES)
    metas = []
    with zipfile.ZipFile(job["archive"]) as archive:
        for name, member in job["members"]:
            event = real_audio._read_audio(archive.read(member))
            if real_audio._is_silent(event):
                raise RuntimeError(f"silent sound event: {member} in {job['archive']}")
            rng = real_audio._rng(job["seed"], "sound_events", member)
            for k in range(job["clips_per_file"]):
                clip = _event_clip(event, num_samples, rng)
                meta = real_audio._write_wav(
                    directory, f"{job['split']}/{name}_{PurePosixPath(member).stem}_{k}.wav", clip
                )
                meta.update(split=job["split"], label=labels.index(name), event=name, source=member,
                            take_group=f"{name}/{take_group(member)}")  # fmt: skip
                metas.append(meta)
    return metas


def build_sound_event_task(out_dir, seed: int = 0, train_clips_per_file: int = 4, test_clips_per_file: int = 4,
                           clip_seconds: float = 2.0, archive: str = ARCHIVE, install: bool = True,
                           num_proc: int | None = None):  # fmt: skip
    """Task C (see the module docstring). Default sizes: 297 train takes and 148 test takes, 4 clips each.

    Returns a `datasets.DatasetDict` (`train`, `test`) with `audio`, `label` (ClassLabel of `SOUND_EVENT_CLASSES`),
    `source` (the archive member) and `take_group`. Cached in `out_dir/sound_events`.
    """
    from datasets import ClassLabel, DatasetDict, Value

    if archive == ARCHIVE:
        real_audio.ensure_system_packages(install=install, verbose=False, requirements=REQUIREMENTS)
    elif not Path(archive).is_file():
        raise FileNotFoundError(f"sound-event archive not found: {archive}")
    with zipfile.ZipFile(archive) as z:
        splits = split_members(z.namelist())
    params = {"version": real_audio.GENERATOR_VERSION, "seed": seed, "train_clips_per_file": train_clips_per_file,
              "test_clips_per_file": test_clips_per_file, "clip_seconds": clip_seconds,
              "sampling_rate": real_audio.SAMPLING_RATE, "members": splits}  # fmt: skip
    jobs = []
    for split, per_file in (("train", train_clips_per_file), ("test", test_clips_per_file)):
        pairs = [[name, m] for name, members in splits[split].items() for m in members]
        for start in range(0, len(pairs), 40):
            jobs.append({"split": split, "seed": seed, "archive": archive, "members": pairs[start : start + 40],
                         "clips_per_file": per_file, "clip_seconds": clip_seconds})  # fmt: skip
    directory = Path(out_dir) / "sound_events"
    n = real_audio._default_num_proc() if num_proc is None else num_proc
    manifest = real_audio._build_cached(
        directory, params, jobs, n, ["label", "event", "source", "take_group"], worker=_job_sound_events
    )
    by_split = {s: [c for c in manifest["clips"] if c["split"] == s] for s in ("train", "test")}
    shared = {c["take_group"] for c in by_split["train"]} & {c["take_group"] for c in by_split["test"]}
    assert not shared, f"take groups in both splits: {sorted(shared)[:5]}"
    columns = {"label": ClassLabel(names=list(SOUND_EVENT_CLASSES)), "source": Value("string"),
               "take_group": Value("string")}  # fmt: skip
    return DatasetDict({s: real_audio._to_dataset(directory, clips, columns) for s, clips in by_split.items()})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="outputs/real_audio")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", action="store_true", help="Also probe pooled log-mels (real_audio.py's).")
    args = parser.parse_args(argv)
    task = build_sound_event_task(args.out_dir, seed=args.seed)
    for split, dataset in task.items():
        counts = np.bincount(dataset["label"], minlength=len(SOUND_EVENT_CLASSES))
        print(f"{split}: {len(dataset)} clips; per class {dict(zip(SOUND_EVENT_CLASSES, counts.tolist()))}")
    if args.baseline:
        scores = real_audio.baseline_scores(args.out_dir, seed=args.seed, tasks=("sound_events",))["sound_events"]
        print(f"log-mel mean+std, logistic regression: test accuracy {scores['test_accuracy']:.3f} "
              f"(train {scores['train_accuracy']:.3f}, chance {scores['chance']:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
