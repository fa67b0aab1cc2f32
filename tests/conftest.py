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


# `make test-fast` (pytest -m "not slow") leaves out what starts other processes or compiles: whole modules, and tests
# whose names say they do. One list here, so a moved or renamed test keeps its mark.
SLOW_MODULES = {"test_console_scripts", "test_console_scripts_pretrain", "test_pretraining_launch", "test_export"}
SLOW_NAME_PARTS = ("kill_9", "torchrun", "hear_validator", "remote_code", "subprocess")


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in SLOW_MODULES or any(part in item.name for part in SLOW_NAME_PARTS):
            item.add_marker(pytest.mark.slow)
