"""`maskspec-convert`: an official MaskSpec, MSM-MAE or AudioMAE checkpoint -> a MaskSpec-HF folder
(`maskspec_hf.conversion.convert_checkpoint`)."""

import sys
from dataclasses import dataclass, field

from . import parse_command_line, run_console_script


@dataclass
class ConvertArguments:
    source: str = field(metadata={"help": "Which official code wrote the checkpoint: maskspec, msm-mae or audiomae."})
    checkpoint_path: str = field(metadata={"help": "The official .pth file (or a state dict / .safetensors)."})
    output_dir: str = field(metadata={"help": "Folder to write (config, weights, feature extractor, model card)."})
    labels: str | None = field(
        default=None,
        metadata={"help": "Class index CSV (index,mid,display_name) for fine-tuned checkpoints, e.g. AudioSet's."},
    )
    normalization_file: str | None = field(
        default=None,
        metadata={"help": "MaskSpec only (required): the authors' audioset/mean_std_128.npy per-mel-bin statistics."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "key=value,... config fields the weights do not fix (e.g. num_attention_heads=6)."},
    )
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a folder that holds a model."})


def parse_args(argv=None) -> ConvertArguments:
    """The command line (a recipe JSON/YAML file may come first) as `ConvertArguments`."""
    return parse_command_line((ConvertArguments,), argv)[0]


def _run(argv) -> None:
    from ..conversion import convert_checkpoint

    args = parse_args(argv)
    result = convert_checkpoint(
        args.source,
        args.checkpoint_path,
        args.output_dir,
        labels_csv=args.labels,
        config_overrides=args.config_overrides,
        overwrite=args.overwrite_output_dir,
        normalization_file=args.normalization_file,
    )
    config = result.config
    print(
        f"Wrote {result.output_dir}: {result.model_class} ({result.task}), width {config.hidden_size}, "
        f"{config.num_hidden_layers} blocks, positions {config.position_embedding_type}, "
        f"class token {config.use_cls_token}, pooling {config.pooling}."
    )
    for note in result.notes:
        print(f"note: {note}")


def main(argv=None) -> int:
    return run_console_script(_run, argv, prog="maskspec-convert")


if __name__ == "__main__":
    sys.exit(main())
