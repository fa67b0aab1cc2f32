"""Convert the authors' MaskSpec, MSM-MAE and AudioMAE checkpoints into MaskSpec-HF folders (`maskspec-convert`).

`convert_checkpoint(source, checkpoint_path, output_dir, labels_csv=None)` loads an official `.pth` without running
its pickle (`safe_load`), reads its structure from the weights (`architecture`), renames and permutes the weights
onto MaskSpec-HF's (`vit_mapping`, `weights`) and writes a folder that loads with the Auto classes: config,
safetensors weights, the source's feature extractor and a model card (`card`).
"""

from .converter import MODEL_CLASSES, ConversionResult, convert_checkpoint
from .safe_load import SAFE_GLOBALS, LoadedCheckpoint, load_checkpoint
from .sources import SOURCES, Source, get_source


__all__ = [
    "MODEL_CLASSES",
    "SAFE_GLOBALS",
    "SOURCES",
    "ConversionResult",
    "LoadedCheckpoint",
    "Source",
    "convert_checkpoint",
    "get_source",
    "load_checkpoint",
]
