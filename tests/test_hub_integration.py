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


# The start of every remote-code script: the package cannot be imported there, even where it is installed.
WITHOUT_THE_PACKAGE = textwrap.dedent(
    """
    import sys
    sys.modules["maskspec_hf"] = None  # make the package impossible to import, even if it is installed
    try:
        import maskspec_hf  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("maskspec_hf is importable: the test would prove nothing")
    """
)


REMOTE_SCRIPT = WITHOUT_THE_PACKAGE + textwrap.dedent(
    """
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


# --- every Auto class from every saved folder ------------------------------------------------------------------------

AUTO_CLASSES = {
    "AutoConfig": "configuration_maskspec.MaskSpecConfig",
    "AutoModel": "modeling_maskspec.MaskSpecModel",
    "AutoModelForPreTraining": "modeling_maskspec.MaskSpecForPreTraining",
    "AutoModelForAudioClassification": "modeling_maskspec.MaskSpecForAudioClassification",
    "AutoFeatureExtractor": "feature_extraction_maskspec.MaskSpecFeatureExtractor",
}


@pytest.fixture(scope="module")
def pretraining_folder(tmp_path_factory):
    """What a pre-training run's `final/` holds: the pre-training model and the feature extractor."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("maskspec-pretraining")
    MaskSpecForPreTraining(tiny_classifier_config()).save_pretrained(folder)
    MaskSpecFeatureExtractor().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("model_class", [MaskSpecModel, MaskSpecForPreTraining, MaskSpecForAudioClassification, None])
def test_every_saved_folder_maps_every_auto_class(tmp_path, model_class):
    # Model only (no feature extractor), or the config alone (None): the full map and every file it names.
    if model_class is None:
        tiny_classifier_config().save_pretrained(tmp_path)
    else:
        model_class(tiny_classifier_config()).save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == AUTO_CLASSES
    for reference in auto_map.values():
        assert (tmp_path / f"{reference.split('.')[0]}.py").is_file(), reference


REMOTE_ALL_AUTO_SCRIPT = WITHOUT_THE_PACKAGE + textwrap.dedent(
    """
    import json, os
    import numpy as np, torch
    from transformers import (
        AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification, AutoModelForPreTraining,
    )

    results = {}
    for folder in sys.argv[1:]:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        result = {"AutoConfig": type(config).__name__, "modules": [type(config).__module__]}
        values = torch.randn(1, 64, config.num_mel_bins)
        encoders = {}
        for auto in (AutoModel, AutoModelForPreTraining, AutoModelForAudioClassification):
            model, info = auto.from_pretrained(folder, trust_remote_code=True, output_loading_info=True)
            model.eval()
            result["modules"].append(type(model).__module__)
            with torch.no_grad():
                output = model(values)
            result[auto.__name__] = {
                "class": type(model).__name__,
                "missing": sorted(info["missing_keys"]),
                "unexpected": sorted(info["unexpected_keys"]),
                "output_shape": list((output.last_hidden_state if auto is AutoModel else output.logits).shape),
            }
            encoder = model if auto is AutoModel else model.maskspec
            encoders[auto.__name__] = encoder.state_dict()
        # Saved again from the remote code (e.g. after fine-tuning): every mapped entry has its file.
        resaved = os.path.join(os.getcwd(), "resaved-" + os.path.basename(folder))
        model.save_pretrained(resaved)
        auto_map = json.load(open(os.path.join(resaved, "config.json")))["auto_map"]
        result["resaved_auto_map"] = sorted(auto_map)
        result["resaved_files_present"] = all(
            os.path.isfile(os.path.join(resaved, reference.split(".")[0] + ".py")) for reference in auto_map.values()
        )
        reference = encoders["AutoModel"]
        result["same_encoder_weights"] = all(
            all(torch.equal(weights[name], reference[name]) for name in reference) for weights in encoders.values()
        )
        if os.path.exists(os.path.join(folder, "preprocessor_config.json")):
            extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
            result["modules"].append(type(extractor).__module__)
            audio = np.sin(np.linspace(0, 2000, 32000)).astype("float32")
            features = extractor(audio, sampling_rate=extractor.sampling_rate, return_tensors="pt")
            result["AutoFeatureExtractor"] = [type(extractor).__name__, list(features["input_values"].shape)]
        results[folder] = result
    print(json.dumps(results))
    """
)


def test_every_auto_class_loads_every_folder_as_remote_code(pretraining_folder, classifier_folder, tmp_path):
    encoder_only = tmp_path / "encoder-only"  # saved by MaskSpecModel, without a feature extractor
    torch.manual_seed(0)
    MaskSpecModel(tiny_classifier_config()).save_pretrained(encoder_only)
    script = tmp_path / "load_all_remote.py"
    script.write_text(REMOTE_ALL_AUTO_SCRIPT)
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf_home")}
    folders = [str(pretraining_folder), str(classifier_folder), str(encoder_only)]
    result = subprocess.run(
        [sys.executable, "-I", str(script), *folders],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Decoder or head weights an encoder does not use are dropped quietly.
    assert "UNEXPECTED" not in result.stderr, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    head = ["classifier.bias", "classifier.weight", "fc_norm.bias", "fc_norm.weight"]
    decoder = sorted(MaskSpecForPreTraining(tiny_classifier_config()).decoder.state_dict())
    decoder = [f"decoder.{name}" for name in decoder]
    saved_by = {str(pretraining_folder): "pretraining", str(classifier_folder): "classifier", str(encoder_only): None}
    for folder, loaded in results.items():
        assert not any("maskspec_hf" in module for module in loaded["modules"]), loaded["modules"]
        assert loaded["AutoConfig"] == "MaskSpecConfig"
        assert loaded["AutoModel"]["class"] == "MaskSpecModel"
        assert loaded["AutoModelForPreTraining"]["class"] == "MaskSpecForPreTraining"
        assert loaded["AutoModelForAudioClassification"]["class"] == "MaskSpecForAudioClassification"
        assert all(loaded[name]["unexpected"] == [] for name in ("AutoModel", "AutoModelForPreTraining"))
        assert loaded["AutoModel"]["missing"] == [] and loaded["AutoModel"]["output_shape"] == [1, 32, 192]
        assert loaded["same_encoder_weights"]  # every class got the saved encoder, not a random one
        assert {"AutoConfig", "AutoModel", "AutoModelForPreTraining", "AutoModelForAudioClassification"} <= set(
            loaded["resaved_auto_map"]
        )
        assert loaded["resaved_files_present"]
        classifier = loaded["AutoModelForAudioClassification"]
        pretraining = loaded["AutoModelForPreTraining"]
        if saved_by[folder] == "classifier":
            assert classifier["missing"] == [] and classifier["output_shape"] == [1, len(LABELS)]
            assert pretraining["missing"] == decoder  # a classifier has no decoder: a fresh one
        else:
            # A pre-training (or encoder) folder gives a classifier with a fresh head, the encoder as saved.
            assert classifier["missing"] == head and classifier["unexpected"] == []
            assert classifier["output_shape"][0] == 1
            assert pretraining["missing"] == ([] if saved_by[folder] == "pretraining" else decoder)
        if saved_by[folder] is None:
            assert "AutoFeatureExtractor" not in loaded  # mapped, but no preprocessor_config.json was saved
        else:
            assert loaded["AutoFeatureExtractor"] == ["MaskSpecFeatureExtractor", [1, 100, 128]]


def test_encoder_from_pretraining_folder_has_no_load_report(pretraining_folder):
    from transformers.testing_utils import CaptureLogger
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()
    # The library's root logger: the load report of any transformers module reaches it.
    with CaptureLogger(hf_logging.get_logger("transformers")) as captured:
        encoder = AutoModel.from_pretrained(pretraining_folder)
        same = MaskSpecModel.from_pretrained(pretraining_folder)
    assert "UNEXPECTED" not in captured.out and "decoder." not in captured.out, captured.out
    # The check would see a report: a classifier from the same folder does get one, for its fresh head.
    with CaptureLogger(hf_logging.get_logger("transformers")) as captured:
        MaskSpecForAudioClassification.from_pretrained(pretraining_folder)
    assert "MISSING" in captured.out and "classifier.weight" in captured.out
    assert type(encoder) is MaskSpecModel
    pretrained = MaskSpecForPreTraining.from_pretrained(pretraining_folder)
    for name, weights in pretrained.maskspec.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], weights) and torch.equal(same.state_dict()[name], weights)
