"""torch.compile(fullgraph=True), torch.export and ONNX export of the encoder and the classifier.

Dynamic batch and frame counts (including frame counts that are not a multiple of the patch size) with a padding
mask, compared with eager mode. A tiny model keeps each export to a few seconds on CPU.
"""

import pytest
import torch
from test_modeling import small_config

from maskspec_hf import MaskSpecForAudioClassification, MaskSpecModel


def tiny_config(**kwargs):
    return small_config(**{"num_hidden_layers": 1, "num_labels": 3, **kwargs})


def padded_batch(batch_size: int, num_frames: int, last_clip_frames: int, seed: int = 0):
    """Random features with the last clip of the batch padded after `last_clip_frames` frames."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(batch_size, num_frames, 32, generator=generator)
    attention_mask = torch.ones(batch_size, num_frames, dtype=torch.long)
    attention_mask[-1, last_clip_frames:] = 0
    return values, attention_mask


# Shapes the exported / compiled model must handle after tracing one: other batch sizes, frame counts that do and
# do not fill whole patches, the shortest input (one patch), a full window, with and without padded clips.
SHAPES = [(3, 61, 20), (1, 16, 16), (2, 64, 50), (4, 37, 37)]
OUTPUT = {MaskSpecModel: "last_hidden_state", MaskSpecForAudioClassification: "logits"}


def make_model(model_class):
    torch.manual_seed(0)
    return model_class(tiny_config()).eval()


def dynamic_shapes():
    batch = torch.export.Dim("batch", min=1, max=32)
    # From two patches (torch.export specializes a size-1 patch grid) to one classifier window (`max_frames`):
    # longer inputs take the eager-only windowing path.
    frames = torch.export.Dim("frames", min=16, max=64)
    return {"input_values": {0: batch, 1: frames}, "attention_mask": {0: batch, 1: frames}}


def example_inputs():
    values, attention_mask = padded_batch(2, 45, 30)
    return {"input_values": values, "attention_mask": attention_mask}


@pytest.mark.parametrize("model_class", [MaskSpecModel, MaskSpecForAudioClassification])
def test_torch_export_with_dynamic_batch_frames_and_mask(model_class):
    model, key = make_model(model_class), OUTPUT[model_class]
    exported = torch.export.export(model, args=(), kwargs=example_inputs(), dynamic_shapes=dynamic_shapes())
    for batch_size, num_frames, last_clip_frames in SHAPES:
        values, attention_mask = padded_batch(batch_size, num_frames, last_clip_frames, seed=num_frames)
        with torch.no_grad():
            expected = model(values, attention_mask=attention_mask)[key]
            actual = exported.module()(input_values=values, attention_mask=attention_mask)[key]
        assert actual.shape == expected.shape
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    # Tracing must leave nothing behind (e.g. cached fake tensors) that breaks eager calls on the traced grid.
    values = example_inputs()["input_values"]
    with torch.no_grad():
        assert torch.isfinite(model(values)[key]).all()


@pytest.mark.parametrize("model_class", [MaskSpecModel, MaskSpecForAudioClassification])
def test_compile_fullgraph_with_dynamic_shapes_and_mask(model_class):
    assert model_class._can_compile_fullgraph
    model, key = make_model(model_class), OUTPUT[model_class]
    torch._dynamo.reset()
    # fullgraph=True raises on any graph break, e.g. a branch on the values of the mask.
    compiled = torch.compile(model, fullgraph=True, dynamic=True)
    for batch_size, num_frames, last_clip_frames in SHAPES[:2]:
        values, attention_mask = padded_batch(batch_size, num_frames, last_clip_frames, seed=num_frames)
        with torch.no_grad():
            expected = model(values, attention_mask=attention_mask)[key]
            actual = compiled(values, attention_mask=attention_mask)[key]
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_class", [MaskSpecModel, MaskSpecForAudioClassification])
def test_onnx_export_matches_eager_in_onnxruntime(model_class, tmp_path):
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")
    model, key = make_model(model_class), OUTPUT[model_class]
    program = torch.onnx.export(
        model, args=(), kwargs=example_inputs(), dynamic_shapes=dynamic_shapes(), dynamo=True, verbose=False
    )
    program.save(str(tmp_path / "model.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_values", "attention_mask"]
    for batch_size, num_frames, last_clip_frames in SHAPES:
        values, attention_mask = padded_batch(batch_size, num_frames, last_clip_frames, seed=num_frames)
        with torch.no_grad():
            expected = model(values, attention_mask=attention_mask)[key]
        # The first output is the model output's first field (last_hidden_state / logits).
        actual = session.run(None, {"input_values": values.numpy(), "attention_mask": attention_mask.numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(actual), expected, atol=1e-5, rtol=1e-5)


def test_exported_encoder_drops_only_the_integer_grid():
    # ONNX outputs must be tensors: while exporting, `grid` (two ints) is None; the tensors are all there.
    model = make_model(MaskSpecModel)
    exported = torch.export.export(model, args=(), kwargs=example_inputs(), dynamic_shapes=dynamic_shapes())
    outputs = exported.module()(**example_inputs())
    assert outputs.grid is None
    assert set(outputs.keys()) == {"last_hidden_state", "pooler_output", "patch_attention_mask"}
    assert model(**example_inputs()).grid == (5, 4)


def test_meta_device_forward_does_not_break_eager_forwards():
    # A shape-only pass on the meta device (as when sizing a model) used to cache a meta position table that every
    # later eager forward on the same grid then failed to copy.
    config = tiny_config()
    with torch.device("meta"):
        meta_model = MaskSpecModel(config)
        meta_out = meta_model(torch.randn(2, 40, 32)).last_hidden_state
    assert meta_out.device.type == "meta" and meta_out.shape == (2, 20, 32)
    model = make_model(MaskSpecModel)
    values = torch.randn(2, 40, 32)
    out = model(values).last_hidden_state
    assert out.device.type == "cpu" and torch.isfinite(out).all()


def test_eager_all_real_mask_keeps_the_unmasked_fast_path():
    # In eager mode a mask without padding is dropped (SDPA runs unmasked, pooling is a plain mean) and gives the
    # same outputs as no mask.
    model = make_model(MaskSpecModel)
    values = torch.randn(2, 45, 32)
    with_mask = model(values, attention_mask=torch.ones(2, 45, dtype=torch.long))
    assert with_mask.patch_attention_mask is None
    torch.testing.assert_close(with_mask.pooler_output, model(values).pooler_output, atol=0, rtol=0)
