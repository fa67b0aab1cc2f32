"""Safe loading of checkpoint files, the pipeline on a converted classifier, and the `maskspec-convert` command."""

import builtins
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_convert_reference import FIXTURES, OVERRIDES, official_state_dict, save_frame_statistics, save_official
from transformers import pipeline

import maskspec_hf  # noqa: F401
from maskspec_hf import MaskSpecFeatureExtractor, MaskSpecForAudioClassification
from maskspec_hf.conversion import convert_checkpoint, load_checkpoint


class _RunsCodeWhenUnpickled:
    """What a malicious checkpoint holds: unpickling it would run `exec`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_a_checkpoint_with_a_disallowed_global_is_refused_unrun(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "checkpoint-99.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _RunsCodeWhenUnpickled(marker)}, path)
    with pytest.raises(ValueError, match=r"checkpoint-99\.pth.*the global `(builtins\.)?exec`"):
        load_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(ValueError, match="exec"):  # the converter goes through the same loader
        convert_checkpoint("audiomae", path, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_containers_plain_state_dicts_and_safetensors_load_the_same_weights(tmp_path):
    fx = FIXTURES["audiomae-pretrained"]
    container, state = save_official(fx, tmp_path)
    loaded = load_checkpoint(container)
    assert set(loaded.container_keys) == {"model", "optimizer", "epoch", "scaler", "args"}
    assert loaded.epoch == 99 and str(loaded.args["output_dir"]) == "/checkpoint/x/419909"  # a pathlib.Path
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "plain.pth")  # DataParallel prefix
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "weights.safetensors")
    for other in (load_checkpoint(tmp_path / "plain.pth"), load_checkpoint(tmp_path / "weights.safetensors")):
        assert other.container_keys == () and other.args == {}
        assert other.state_dict.keys() == loaded.state_dict.keys()
        assert all(torch.equal(other.state_dict[k], loaded.state_dict[k]) for k in state)


def test_unknown_weights_and_missing_labels_are_errors(tmp_path):
    fx = FIXTURES["audiomae-finetuned"]
    state = official_state_dict(fx)
    torch.save({"model": state}, tmp_path / "finetuned.pth")
    with pytest.raises(ValueError, match="pass --labels"):
        convert_checkpoint("audiomae", tmp_path / "finetuned.pth", tmp_path / "a", config_overrides=OVERRIDES)
    state["dist_token"] = torch.zeros(1, 1, 32)  # a DeiT-style distilled model: not a MaskSpec checkpoint
    torch.save({"model": state}, tmp_path / "distilled.pth")
    with pytest.raises(ValueError, match="dist_token"):
        convert_checkpoint(
            "audiomae", tmp_path / "distilled.pth", tmp_path / "b", config_overrides="num_attention_heads=2"
        )
    with pytest.raises(ValueError, match="Unknown --source"):
        convert_checkpoint("beats", tmp_path / "finetuned.pth", tmp_path / "c")


def test_maskspec_statistics_file_is_required_and_read_without_running_its_pickle(tmp_path):
    checkpoint, _ = save_official(FIXTURES["maskspec-pretrained"], tmp_path)

    def convert(output, statistics=None, source="maskspec", path=checkpoint):
        return convert_checkpoint(
            source, path, tmp_path / output, config_overrides=OVERRIDES, normalization_file=statistics
        )

    with pytest.raises(ValueError, match="needs --normalization_file.*audioset/mean_std_128.npy"):
        convert("a")
    marker = tmp_path / "code-ran"
    np.save(tmp_path / "evil.npy", np.array(_RunsCodeWhenUnpickled(marker), dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"Refusing to read .*evil\.npy.*exec"):
        convert("b", tmp_path / "evil.npy")
    assert not marker.exists()
    short, _ = save_frame_statistics(tmp_path / "short", num_bins=80)
    with pytest.raises(ValueError, match="must have 128 values"):
        convert("c", short)

    # The same statistics as plain arrays (.npz) work too.
    _, statistics = save_frame_statistics(tmp_path / "official")
    np.savez(tmp_path / "stats.npz", frame_mean=statistics["frame_mean"], frame_std=statistics["frame_std"])
    convert("d", tmp_path / "stats.npz")
    extractor = MaskSpecFeatureExtractor.from_pretrained(tmp_path / "d")
    np.testing.assert_allclose(extractor.std, 5 * statistics["frame_std"], rtol=0, atol=1e-5)
    msm, _ = save_official(FIXTURES["msm-mae-80x208"], tmp_path / "msm")
    with pytest.raises(ValueError, match="does not use one"):
        convert("e", tmp_path / "stats.npz", source="msm-mae", path=msm)


def test_pipeline_on_a_converted_classifier_returns_sigmoid_scores(tmp_path, audioset_class_index):
    fx = FIXTURES["maskspec-finetuned"]
    checkpoint, _ = save_official(fx, tmp_path / "official")
    statistics, _ = save_frame_statistics(tmp_path / "official")
    folder = tmp_path / "converted"
    convert_checkpoint(
        fx.source,
        checkpoint,
        folder,
        labels_csv=audioset_class_index,
        config_overrides=OVERRIDES,
        normalization_file=statistics,
    )
    waveform = np.random.default_rng(0).standard_normal(32000 * 2).astype(np.float32) * 0.1
    scores = pipeline("audio-classification", model=str(folder))(waveform, top_k=527)
    assert len(scores) == 527 and len({s["label"] for s in scores}) == 527
    values = np.array([s["score"] for s in scores])
    assert ((values > 0) & (values < 1)).all() and abs(values.sum() - 1.0) > 0.1  # independent sigmoids
    # The same as the model's own logits through a sigmoid.
    extractor = MaskSpecFeatureExtractor.from_pretrained(folder)
    model = MaskSpecForAudioClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        probabilities = model(**extractor(waveform, sampling_rate=32000, return_tensors="pt")).logits.sigmoid()[0]
    expected = {model.config.id2label[i]: float(p) for i, p in enumerate(probabilities)}
    assert all(s["score"] == pytest.approx(expected[s["label"]], abs=1e-5) for s in scores)


def _run_convert(*args):
    return subprocess.run(
        [sys.executable, "-m", "maskspec_hf.cli.convert", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_console_script_subprocess_converts_and_fails_cleanly(tmp_path):
    fx = FIXTURES["msm-mae-80x208"]
    checkpoint, _ = save_official(fx, tmp_path / "official")
    done = _run_convert(
        "--source", "msm-mae", "--checkpoint_path", checkpoint, "--output_dir", tmp_path / "out",
        "--config_overrides", OVERRIDES,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "MaskSpecForPreTraining" in done.stdout
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= {
        p.name for p in (tmp_path / "out").iterdir()
    }

    for args, message in (
        (["--source", "wav2vec", "--checkpoint_path", checkpoint], "Unknown --source 'wav2vec'"),
        (["--source", "msm-mae", "--checkpoint_path", tmp_path / "missing.pth"], "does not exist"),
    ):
        failed = _run_convert(*args, "--output_dir", tmp_path / "never")
        assert failed.returncode == 2
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("maskspec-convert: error:") and message in lines[0]
    assert not (tmp_path / "never").exists()


def test_console_script_refuses_to_overwrite_a_model_folder(tmp_path, capsys):
    from maskspec_hf.cli.convert import main

    checkpoint, _ = save_official(FIXTURES["msm-mae-no-cls"], tmp_path / "official")
    args = ["--source", "msm-mae", "--checkpoint_path", str(checkpoint), "--output_dir", str(tmp_path / "out")]
    assert main([*args, "--config_overrides", OVERRIDES]) == 0
    assert main([*args, "--config_overrides", OVERRIDES]) == 2
    assert "--overwrite_output_dir" in capsys.readouterr().err
    assert main([*args, "--config_overrides", OVERRIDES, "--overwrite_output_dir"]) == 0
