"""The HEAR 2021 API: the real `hear-validator` command, shapes, timestamps, chunking and loading."""

import importlib.util
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from maskspec_hf import MaskSpecConfig, MaskSpecFeatureExtractor, MaskSpecForPreTraining
from maskspec_hf.evaluation import hear


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny, randomly initialized pre-training checkpoint whose window (96 frames) forces chunking."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("maskspec")
    config = MaskSpecConfig.from_preset("tiny", num_hidden_layers=2, decoder_num_hidden_layers=1, max_frames=100)
    MaskSpecForPreTraining(config).save_pretrained(folder)
    MaskSpecFeatureExtractor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(checkpoint):
    return hear.load_model(str(checkpoint))


# hearvalidator 2021.0.2 imports tensorflow at module level but only uses it for TensorFlow models (`isinstance(model,
# tf.Module)`, `tf.device`). It is installed with `pip install --no-deps` (tensorflow is a 600 MB dependency this
# project does not need); where tensorflow is missing, this stand-in satisfies the import and the validator runs its
# unchanged PyTorch checks.
TENSORFLOW_STAND_IN = textwrap.dedent(
    '''
    """Stand-in for tensorflow, for running hear-validator on PyTorch models without installing tensorflow."""
    import contextlib


    class Module:  # no PyTorch model is an instance of this
        pass


    def device(name):
        return contextlib.nullcontext()
    '''
)


def test_hear_validator_passes(checkpoint, tmp_path):
    validator = shutil.which("hear-validator")
    assert validator, "hear-validator is not installed: run `make install` (pip install --no-deps hearvalidator)"
    env = dict(os.environ, HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    if importlib.util.find_spec("tensorflow") is None:
        (tmp_path / "tensorflow").mkdir()
        (tmp_path / "tensorflow" / "__init__.py").write_text(TENSORFLOW_STAND_IN)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [validator, "maskspec_hf.evaluation.hear", "-m", str(checkpoint), "-d", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Looks good!" in result.stdout
    assert "Model sample rate is: 48000" in result.stdout
    assert "Received embedding of shape: torch.Size([16, 12, 1536])" in result.stdout  # 2 s -> 12 steps of 160 ms
    assert "Received embedding of shape: torch.Size([8, 1536])" in result.stdout


def test_attributes_and_sizes(model):
    assert model.sample_rate == 48000
    assert model.timestamp_embedding_size == model.scene_embedding_size == 192 * 8
    assert isinstance(model, torch.nn.Module) and model.chunk_frames == 96 and model.step_ms == 160.0


def test_timestamp_embeddings_concatenate_frequency_patches_per_time_step(model):
    torch.manual_seed(1)
    audio = torch.rand(3, 48000 * 2) * 0.2 - 0.1  # 2 s at 48 kHz -> 200 frames -> 12 whole patches in time
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (3, 12, 1536) and embeddings.dtype == torch.float32
    np.testing.assert_allclose(timestamps[0].numpy(), 75.0 + 160.0 * np.arange(12))
    assert torch.equal(timestamps[0], timestamps[2])

    # By hand: resample to 32 kHz, log-mel, encoder on 96-frame chunks, per time row the 8 frequency patches in order.
    features = hear._features(audio, model)
    assert features.shape[1] == 200
    rows = []
    with torch.no_grad():
        for start in (0, 96):  # two chunks of 96 frames; the last 8 frames do not fill a patch
            hidden = model.encoder(features[:, start : start + 96]).last_hidden_state  # [3, 6 * 8, 192]
            rows.append(torch.stack([hidden[:, r * 8 : (r + 1) * 8].reshape(3, -1) for r in range(6)], dim=1))
    torch.testing.assert_close(embeddings, torch.cat(rows, dim=1), atol=1e-5, rtol=1e-5)

    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, 1536)
    torch.testing.assert_close(scene, embeddings.mean(dim=1))


def test_short_audio_gets_one_step_and_bad_input_is_rejected(model):
    embeddings, timestamps = hear.get_timestamp_embeddings(torch.zeros(2, 2400), model)  # 50 ms: padded to a patch
    assert embeddings.shape == (2, 1, 1536) and timestamps.shape == (2, 1)
    with pytest.raises(ValueError, match=r"\[n_sounds, n_samples\]"):
        hear.get_scene_embeddings(torch.zeros(48000), model)


def test_load_model_needs_a_checkpoint_and_drops_the_decoder_quietly(checkpoint, capfd):
    with pytest.raises(ValueError, match="needs a MaskSpec checkpoint"):
        hear.load_model()
    loaded = hear.load_model(str(checkpoint))
    assert "LOAD REPORT" not in "".join(capfd.readouterr())
    reference = MaskSpecForPreTraining.from_pretrained(checkpoint).maskspec
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(loaded.encoder.state_dict()[name], tensor)
    random_tiny = hear.load_model("tiny")
    assert random_tiny.timestamp_embedding_size == 1536 and random_tiny.encoder.config.num_hidden_layers == 12


def test_a_fixed_length_front_end_does_not_cut_the_timestamps_short(tmp_path):
    # AudioMAE's front end pads or cuts every clip to 1024 frames (10.24 s); HEAR's timestamps must still cover a
    # 12 s sound (the encoder's windows do the cutting, not the front end).
    torch.manual_seed(0)
    config = MaskSpecConfig.from_preset("tiny", num_hidden_layers=1, decoder_num_hidden_layers=1, max_frames=1024)
    MaskSpecForPreTraining(config).save_pretrained(tmp_path)
    extractor = MaskSpecFeatureExtractor.from_front_end("audiomae")
    assert extractor.pad_or_truncate and extractor.max_length_frames == 1024
    extractor.save_pretrained(tmp_path)
    model = hear.load_model(str(tmp_path))
    audio = torch.rand(1, model.sample_rate * 12) * 0.2 - 0.1
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert timestamps[0, -1] > 11_000 and embeddings.shape[1] == timestamps.shape[1] > 64
