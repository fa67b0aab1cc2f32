"""benchmarks/sound_events.py: the third benchmark task, built here from a small archive laid out as 0 A.D.'s.

The real archive is 3.3 GB (Debian's 0ad-data); this one holds short recorded-like events (noise bursts and tones
written as Ogg Vorbis, as in the game's) under the same paths, plus members that no class may take.
"""

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_audio  # noqa: E402
import sound_events  # noqa: E402


TAKES = {
    "footstep": ["audio/actor/singlesteps/fs_grass1.ogg", "audio/actor/singlesteps/fs_grass2.ogg",
                 "audio/actor/singlesteps/fs_wood1.ogg"],
    "sword_clash": ["audio/attack/weapon/swordhit_10.ogg", "audio/attack/weapon/swordhit_10a.ogg",
                    "audio/attack/weapon/swordhit_11.ogg", "audio/attack/weapon/swordhit_11a.ogg",
                    "audio/attack/weapon/swordhit_11b.ogg", "audio/attack/weapon/swordhit_12.ogg"],
    "wood_chop": ["audio/resource/lumbering/lumber_tree_01.ogg", "audio/resource/lumbering/lumber_tree_02.ogg"],
    "animal_call": ["audio/actor/fauna/animal/camel_10.ogg", "audio/actor/fauna/animal/sheep_11.ogg"],
}  # fmt: skip
# Members of the real archive that look alike but belong to no class.
OTHERS = ["audio/resource/lumbering/lumber_treeexpire_01.ogg", "audio/music/Sunrise.ogg",
          "audio/actor/fauna/death/goat_17.ogg", "audio/attack/weapon/bow_attack_01.ogg"]  # fmt: skip


def _ogg(seconds: float, seed: int, rate: int = 44100) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.2 * rng.standard_normal(len(t))) * np.exp(-4 * t)
    buffer = io.BytesIO()
    sf.write(buffer, x.astype(np.float32), rate, format="OGG", subtype="VORBIS")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("0ad") / "public.zip"
    with zipfile.ZipFile(path, "w") as z:
        for k, member in enumerate([m for members in TAKES.values() for m in members] + OTHERS):
            # Takes of 0.3-3 s: shorter and longer than a clip.
            z.writestr(member, _ogg(0.3 + 0.45 * (k % 7), seed=k))
        z.writestr("audio/readme.txt", "not audio")
    return str(path)


def test_variants_of_a_take_stay_in_one_split_and_other_members_are_left_out():
    members = [m for ms in TAKES.values() for m in ms] + OTHERS
    splits = sound_events.split_members(members)
    taken = {m for split in splits.values() for ms in split.values() for m in ms}
    assert taken == {m for ms in TAKES.values() for m in ms}
    # swordhit_10/10a, 11/11a/11b, 12: three groups, the second (11) to test with both its variants.
    assert splits["test"]["sword_clash"] == [
        "audio/attack/weapon/swordhit_11.ogg", "audio/attack/weapon/swordhit_11a.ogg",
        "audio/attack/weapon/swordhit_11b.ogg",
    ]  # fmt: skip
    assert splits["test"]["footstep"] == ["audio/actor/singlesteps/fs_grass2.ogg"]
    assert splits["train"]["wood_chop"] == ["audio/resource/lumbering/lumber_tree_01.ogg"]
    assert sound_events.take_group("audio/attack/weapon/swordhit_11b.ogg") == "swordhit_11"
    assert sound_events.take_group("audio/actor/fauna/animal/camel_10.ogg") == "camel_10"


def test_the_task_is_real_audio_clips_of_equal_length_split_by_take(tmp_path, archive):
    task = sound_events.build_sound_event_task(
        tmp_path, archive=archive, train_clips_per_file=2, test_clips_per_file=1, num_proc=1
    )
    assert set(task) == {"train", "test"}
    assert task["train"].features["label"].names == list(sound_events.SOUND_EVENT_CLASSES)
    splits = sound_events.split_members([m for ms in TAKES.values() for m in ms] + OTHERS)
    for split, per_file in (("train", 2), ("test", 1)):
        assert len(task[split]) == per_file * sum(len(ms) for ms in splits[split].values())
    assert not set(task["train"]["take_group"]) & set(task["test"]["take_group"])
    names = task["train"].features["label"].names
    for row in task["test"]:
        assert row["audio"]["sampling_rate"] == real_audio.SAMPLING_RATE
        assert len(row["audio"]["array"]) == 2 * real_audio.SAMPLING_RATE
        assert np.abs(row["audio"]["array"]).max() > 0.05  # the event is in the clip
        event = names[row["label"]]
        assert row["source"] in TAKES[event]
    # A second build from nothing writes the same audio; a third call loads the cache.
    again = sound_events.build_sound_event_task(
        tmp_path / "again", archive=archive, train_clips_per_file=2, test_clips_per_file=1, num_proc=1
    )
    first, second = (real_audio.load_manifest(d, "sound_events")["clips"] for d in (tmp_path, tmp_path / "again"))
    assert [c["sha1"] for c in first] == [c["sha1"] for c in second]
    assert len(again["test"]) == len(task["test"])


def test_a_missing_archive_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "public.zip"
    with pytest.raises(FileNotFoundError, match="nowhere/public.zip"):
        sound_events.build_sound_event_task(tmp_path, archive=str(missing))
