"""Auto classes, pipeline and remote-code loading of saved MaskSpec folders."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForPreTraining,
    pipeline,
)

from maskspec_hf import (
    MaskSpecConfig,
    MaskSpecFeatureExtractor,
    MaskSpecForAudioClassification,
    MaskSpecForPreTraining,
    MaskSpecModel,
)


LABELS = ["cat", "dog", "bird"]


def tiny_classifier_config(**kwargs) -> MaskSpecConfig:
    return MaskSpecConfig.from_preset(
        "tiny",
        num_hidden_layers=2,
        decoder_num_hidden_layers=1,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        **kwargs,
    )


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("maskspec-classifier")
    MaskSpecForAudioClassification(tiny_classifier_config()).save_pretrained(folder)
    MaskSpecFeatureExtractor().save_pretrained(folder)
    return folder


def test_auto_classes_resolve_maskspec(tmp_path):
    config = MaskSpecConfig.from_preset("tiny", num_hidden_layers=1, decoder_num_hidden_layers=1)
    assert type(AutoConfig.for_model("maskspec")) is MaskSpecConfig
    assert type(AutoModel.from_config(config)) is MaskSpecModel
    assert type(AutoModelForPreTraining.from_config(config)) is MaskSpecForPreTraining
    assert type(AutoModelForAudioClassification.from_config(config)) is MaskSpecForAudioClassification
    MaskSpecFeatureExtractor().save_pretrained(tmp_path)
    config.save_pretrained(tmp_path)
    assert type(AutoFeatureExtractor.from_pretrained(tmp_path)) is MaskSpecFeatureExtractor


def test_saved_folder_is_hub_ready(classifier_folder):
    files = {p.name for p in classifier_folder.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files
    assert {"configuration_maskspec.py", "modeling_maskspec.py", "feature_extraction_maskspec.py"} <= files
    config = json.loads((classifier_folder / "config.json").read_text())
    assert config["model_type"] == "maskspec"
    assert config["auto_map"]["AutoModelForAudioClassification"].endswith("MaskSpecForAudioClassification")
    assert config["auto_map"]["AutoConfig"] == "configuration_maskspec.MaskSpecConfig"
    preprocessor = json.loads((classifier_folder / "preprocessor_config.json").read_text())
    assert preprocessor["auto_map"]["AutoFeatureExtractor"].endswith("MaskSpecFeatureExtractor")


def test_pipeline_on_array_dict_and_real_file(classifier_folder, audioset_clip):
    classifier = pipeline("audio-classification", model=str(classifier_folder))
    audio, rate = sf.read(audioset_clip, dtype="float32")
    assert rate == 32000
    from_file = classifier(str(audioset_clip), top_k=3)
    from_array = classifier(audio, top_k=3)
    from_dict = classifier({"raw": audio, "sampling_rate": rate}, top_k=3)
    assert [r["label"] for r in from_file] and {r["label"] for r in from_file} == set(LABELS)
    assert sum(r["score"] for r in from_array) == pytest.approx(1.0, abs=1e-5)  # softmax over 3 labels
    for a, b in zip(from_array, from_dict):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-6)
    # ffmpeg's decode of the file matches soundfile's to within 16-bit rounding.
    for a, b in zip(from_array, from_file):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-3)
    # Same scores as running the model by hand.
    extractor = MaskSpecFeatureExtractor.from_pretrained(classifier_folder)
    model = MaskSpecForAudioClassification.from_pretrained(classifier_folder).eval()
    with torch.no_grad():
        probs = model(**extractor(audio, sampling_rate=rate, return_tensors="pt")).logits.softmax(-1)[0]
    assert from_array[0]["score"] == pytest.approx(probs.max().item(), abs=1e-5)


def test_multilabel_pipeline_uses_sigmoid(tmp_path):
    torch.manual_seed(0)
    MaskSpecForAudioClassification(tiny_classifier_config(problem_type="multi_label_classification")).save_pretrained(
        tmp_path
    )
    MaskSpecFeatureExtractor().save_pretrained(tmp_path)
    results = pipeline("audio-classification", model=str(tmp_path))(np.random.randn(32000).astype("float32") * 0.1)
    assert len(results) == 3
    assert all(0 < r["score"] < 1 for r in results) and sum(r["score"] for r in results) != pytest.approx(1.0)


REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["maskspec_hf"] = None  # make the package impossible to import, even if it is installed
    try:
        import maskspec_hf  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("maskspec_hf is importable: the test would prove nothing")
    import numpy as np, torch
    from transformers import AutoModelForAudioClassification, pipeline

    folder = sys.argv[1]
    model = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__name__ == "MaskSpecForAudioClassification", type(model)
    assert "maskspec_hf" not in type(model).__module__, type(model).__module__
    classifier = pipeline("audio-classification", model=folder, trust_remote_code=True)
    audio = np.sin(np.linspace(0, 2000, 64000)).astype("float32")
    print(classifier(audio, top_k=1)[0]["label"])
    """
)


def test_remote_code_loads_without_the_package(classifier_folder, tmp_path):
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_SCRIPT)
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run(
        [sys.executable, "-I", str(script), str(classifier_folder)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] in LABELS
