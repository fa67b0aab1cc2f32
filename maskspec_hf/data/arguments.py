"""`DataArguments`: which audio every command reads (names as in transformers' example scripts)."""

from dataclasses import dataclass, field


@dataclass
class DataArguments:
    """Where the audio comes from and which columns and splits to use; shared by every command.

    With no `dataset_name`, `data_dir` or `data_files`, commands that can use it read the built-in synthetic
    corpus of two-vowel words (`maskspec_hf.data.synthetic`)."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A dataset on the Hub (e.g. agkphysics/AudioSet), a local dataset folder, or a folder "
            "saved with save_to_disk."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "With --dataset_name: its data_dir. Alone: an audiofolder (folder-per-class or metadata)."},
    )
    data_files: list[str] | None = field(
        default=None, metadata={"help": "Local data files or globs (parquet, arrow, csv, json, audio).", "nargs": "+"}
    )
    train_split_name: str = field(default="train", metadata={"help": "The training split."})
    eval_split_name: str = field(default="validation", metadata={"help": "The evaluation split."})
    validation_split_percentage: int | None = field(
        default=None,
        metadata={"help": "If the eval split does not exist, hold out this percentage of the training split."},
    )
    audio_column_name: str = field(default="audio", metadata={"help": "The column holding the audio."})
    id_column_name: str | None = field(
        default=None,
        metadata={
            "help": "Column naming each clip in logs and outputs (default: video_id, id, file or path if present)."
        },
    )
    label_column_name: str | None = field(
        default="label",
        metadata={
            "help": "The label column: a ClassLabel/string/int (single-label) or a list of labels (multi-label)."
        },
    )
    class_index_csv: str | None = field(
        default=None,
        metadata={
            "help": "CSV with columns index,mid,display_name (AudioSet's class_labels_indices.csv): labels map "
            "to its indices (by mid, else display_name). Without it the classes are the sorted labels in the "
            "data."
        },
    )
    streaming: bool = field(default=False, metadata={"help": "Stream the dataset instead of downloading it first."})
    shuffle_buffer_size: int = field(default=1000, metadata={"help": "Shuffle buffer of a streamed dataset."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training clips."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many evaluation clips."})
    max_length_seconds: float | None = field(
        default=None,
        metadata={
            "help": "Length of the training crops in seconds: longer clips are cropped at random, shorter ones "
            "padded (padding is masked). Default: the model window, config.max_frames."
        },
    )
    min_length_seconds: float | None = field(
        default=None, metadata={"help": "Skip clips shorter than this (default: one patch of frames, 0.16 s)."}
    )
    synthetic_num_clips: int = field(default=512, metadata={"help": "Built-in data: number of clips."})
    synthetic_seed: int = field(default=0, metadata={"help": "Built-in data: corpus seed."})
    synthetic_clip_seconds: float | None = field(
        default=None, metadata={"help": "Built-in data: clip length (default: --max_length_seconds, else 10 s)."}
    )

    def uses_builtin_data(self) -> bool:
        return not (self.dataset_name or self.data_dir or self.data_files)
