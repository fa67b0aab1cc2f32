import os
from pathlib import Path

import pytest


# Tests never reach the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
AUDIOSET_CLIP = SHARED_DATA / "audioset" / "Y__p-iA312kg.wav"
AUDIOSET_CLASS_INDEX = SHARED_DATA / "audioset" / "class_labels_indices.csv"


@pytest.fixture(scope="session")
def audioset_clip() -> Path:
    if not AUDIOSET_CLIP.exists():
        pytest.skip(f"the shared AudioSet clip is not at {AUDIOSET_CLIP}")
    return AUDIOSET_CLIP


@pytest.fixture(scope="session")
def audioset_class_index() -> Path:
    if not AUDIOSET_CLASS_INDEX.exists():
        pytest.skip(f"the shared AudioSet class index is not at {AUDIOSET_CLASS_INDEX}")
    return AUDIOSET_CLASS_INDEX
