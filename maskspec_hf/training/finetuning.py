# Copyright 2026 The maskspec-hf authors. Licensed under the Apache License, Version 2.0.
"""Fine-tuning MaskSpec for audio classification with `transformers.Trainer` (`maskspec-finetune`).

`finetune(model_args, data_args, finetuning_args, training_args)` is the whole run: the splits, the label space, the
classifier, `MaskSpecTrainer` with MaskSpec's recipe (`FinetuningArguments`; its defaults are the paper's: mixup
α = 0.3, SpecAugment, 40 % patchout, layer decay 0.75, label smoothing 0.1 for single-label tasks, class-balanced
sampling for multi-label data, random crops; `--no_augment` turns the augmentations off), the model card, and one
push to the Hub at the end, checked before training so that a push that cannot work fails at once. A clip that
cannot be used is skipped, counted and reported (`clips_skipped.json`), never fatal unless a split has none left.
"""

import collections
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments, set_seed
from transformers.utils import logging as hf_logging

from ..data.arguments import DataArguments
from ..data.classification import MaskSpecDataCollator, clip_datasets
from ..data.labels import MULTI_LABEL, SINGLE_LABEL, build_label_space
from ..data.loading import load_splits
from ..evaluation.metrics import compute_metrics_fn
from ..hub import check_hub_access, upload_folder
from ..loading import ModelArguments, load_classifier
from ..model_card import write_model_card
from .augment import augment_batch, balanced_sample_weights, classification_loss
from .optim import layer_decay_parameter_groups
from .tracking import setup_logging


logger = hf_logging.get_logger(__name__)

# The eval metrics the model card reports (and the Hub's model-index, for a Hub dataset).
CARD_RESULT_KEYS = (
    "accuracy", "mAP", "mAUC", "d_prime", "loss", "samples", "num_examples", "num_classes", "num_classes_skipped_ap",
    "num_classes_skipped_auc",
)  # fmt: skip


@dataclass
class FinetuningArguments:
    """MaskSpec's fine-tuning recipe; the defaults are the paper's."""

    augment: bool = field(
        default=True,
        metadata={"help": "Master switch: --no_augment turns off mixup, SpecAugment, patchout and random crops."},
    )
    mixup_alpha: float = field(default=0.3, metadata={"help": "Mixup Beta(α, α) parameter; 0 disables mixup."})
    freq_mask_bins: int = field(default=48, metadata={"help": "SpecAugment: mask up to this many mel bins; 0: off."})
    time_mask_frames: int = field(
        default=192, metadata={"help": "SpecAugment: mask up to this many frames per --time_mask_reference_frames."}
    )
    time_mask_reference_frames: int = field(
        default=1000, metadata={"help": "Clip length (frames) at which --time_mask_frames applies; scaled linearly."}
    )
    patchout_ratio: float | None = field(
        default=0.4,
        metadata={"help": "Fraction of patches dropped in training (0: off; unset: keep the checkpoint's value)."},
    )
    layer_decay: float = field(default=0.75, metadata={"help": "Layer-wise learning-rate decay; 1.0 disables it."})
    label_smoothing: float = field(default=0.1, metadata={"help": "Label smoothing for single-label tasks."})
    balanced_sampling: str = field(
        default="auto",
        metadata={
            "help": "Class-balanced sampling: auto (multi-label only), yes or no.",
            "choices": ["auto", "yes", "no"],
        },
    )
    random_crop: bool = field(default=True, metadata={"help": "Random crops of long training clips (else the start)."})
    freeze_feature_encoder: bool = field(
        default=False, metadata={"help": "Freeze the patch projection (MaskSpec fine-tunes everything by default)."}
    )
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "Re-initialize a checkpoint's classification head of another size."}
    )

    def __post_init__(self):
        if self.mixup_alpha < 0:
            raise ValueError(f"--mixup_alpha must be >= 0, got {self.mixup_alpha}.")
        if self.freq_mask_bins < 0 or self.time_mask_frames < 0 or self.time_mask_reference_frames <= 0:
            raise ValueError("--freq_mask_bins and --time_mask_frames must be >= 0, --time_mask_reference_frames > 0.")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"--layer_decay must lie in (0, 1], got {self.layer_decay}.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"--label_smoothing must lie in [0, 1), got {self.label_smoothing}.")
        if self.balanced_sampling not in ("auto", "yes", "no"):
            raise ValueError(f"--balanced_sampling must be auto, yes or no, got {self.balanced_sampling!r}.")
        if not self.augment:
            self.mixup_alpha, self.freq_mask_bins, self.time_mask_frames = 0.0, 0, 0
            self.patchout_ratio, self.random_crop = 0.0, False


class MaskSpecTrainer(Trainer):
    """`Trainer` with MaskSpec's recipe.

    In training steps: SpecAugment and mixup on the batch (per `recipe`), cross-entropy with label smoothing on
    (soft) targets for single-label tasks, binary cross-entropy for multi-label ones. In evaluation the plain loss
    (no smoothing) is reported. With `sample_weights`, training draws clips with those weights (with replacement,
    one epoch = as many draws as clips). With `recipe.layer_decay < 1`, the optimizer uses layer-wise decayed
    learning rates. Clips the collator left out (`skipped_clips`) are logged once each and kept in
    `skipped_clips["train"/"eval"]` (id -> `{"id", "reason", "error"}`); a batch left with no clip is skipped; a
    split whose every clip is bad is an error.
    """

    # `compute_loss` returns a per-batch mean, so Trainer divides it by the gradient accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, recipe: FinetuningArguments | None = None, sample_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.recipe = recipe or FinetuningArguments(augment=False, layer_decay=1.0, label_smoothing=0.0)
        self.sample_weights = None if sample_weights is None else torch.as_tensor(sample_weights, dtype=torch.double)
        self.skipped_clips: dict[str, dict] = {"train": {}, "eval": {}}

    def _take_skipped(self, inputs: dict, split: str) -> dict:
        """`inputs` without `skipped_clips`, whose clips are recorded (and logged, once per clip)."""
        skipped = inputs.get("skipped_clips")
        if not skipped:
            return inputs
        seen = self.skipped_clips[split]
        for clip in skipped:
            if clip["id"] not in seen:
                seen[clip["id"]] = clip
                logger.warning(f"Skipping {split} clip {clip['id']}: {clip['reason']} ({clip['error']})")
        dataset = self.train_dataset if split == "train" else self.eval_dataset
        if hasattr(dataset, "__len__") and not isinstance(dataset, dict) and len(seen) >= len(dataset):
            raise ValueError(
                f"None of the {len(dataset)} clips of the {split} split can be used (e.g. {skipped[0]['id']}: "
                f"{skipped[0]['reason']}, {skipped[0]['error']})."
            )
        return {key: value for key, value in inputs.items() if key != "skipped_clips"}

    @staticmethod
    def _is_empty(inputs: dict) -> bool:
        values = inputs.get("input_values")
        return values is not None and values.shape[0] == 0

    def training_step(self, model, inputs, num_items_in_batch=None):
        inputs = self._take_skipped(inputs, "train")
        if self._is_empty(inputs):  # every clip of the batch was bad: no loss, no gradient
            # NaN lets Trainer's logging_nan_inf_filter (on by default) log the window's mean loss for this step
            # instead of a 0 that would pull the reported training loss down.
            no_loss = float("nan") if self.args.logging_nan_inf_filter else 0.0
            return torch.tensor(no_loss, device=self.args.device)
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._take_skipped(inputs, "eval")
        if self._is_empty(inputs):
            return None, None, None
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        config = self.accelerator.unwrap_model(model).config
        problem_type = config.problem_type or (SINGLE_LABEL if config.num_labels > 1 else "regression")
        if problem_type not in (SINGLE_LABEL, MULTI_LABEL):
            raise ValueError(f"MaskSpecTrainer trains classifiers; the model's problem_type is {problem_type!r}.")
        inputs = dict(inputs)
        if model.training and "labels" in inputs:
            recipe = self.recipe
            inputs = augment_batch(
                inputs,
                problem_type,
                config.num_labels,
                freq_mask_bins=recipe.freq_mask_bins,
                time_mask_frames=recipe.time_mask_frames,
                time_mask_reference_frames=recipe.time_mask_reference_frames,
                mixup_alpha=recipe.mixup_alpha,
            )
        labels = inputs.pop("labels", None)
        outputs = model(**inputs)
        if labels is None:
            loss = outputs["loss"] if isinstance(outputs, dict) and outputs.get("loss") is not None else None
            if loss is None:
                raise ValueError("MaskSpecTrainer needs `labels` in the batch to compute a loss.")
        else:
            smoothing = self.recipe.label_smoothing if model.training else 0.0
            loss = classification_loss(outputs.logits, labels, problem_type, smoothing)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        if self.sample_weights is None:
            return super()._get_train_sampler(train_dataset)
        generator = torch.Generator()
        generator.manual_seed(self.args.seed)
        return torch.utils.data.WeightedRandomSampler(
            self.sample_weights, num_samples=len(self.sample_weights), replacement=True, generator=generator
        )

    def create_optimizer(self, model=None):
        if self.recipe.layer_decay >= 1.0 or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay_names = set(self.get_decay_parameter_names(opt_model))
        groups = layer_decay_parameter_groups(
            opt_model, self.args.learning_rate, self.args.weight_decay, self.recipe.layer_decay, decay_names
        )
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        for key in ("params", "model", "optimizer_dict"):
            if key in optimizer_kwargs:
                raise ValueError(f"--optim {self.args.optim} does not support --layer_decay; pass --layer_decay 1.")
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer


def finetune(
    model_args: ModelArguments,
    data_args: DataArguments,
    finetuning_args: FinetuningArguments,
    training_args: TrainingArguments,
) -> dict:
    """Fine-tune and/or evaluate; returns the metrics (train_* and eval_*) and `clips_skipped`, the clips that could
    not be used (`[{"split", "id", "reason", "error"}]`). Writes the model, its card and the results to
    `training_args.output_dir` (and pushes them with `--push_to_hub`)."""
    setup_logging(training_args.should_log, training_args.get_process_log_level())
    recipe = finetuning_args
    repo_id = _prepare_run(data_args, recipe, training_args)
    need_eval = training_args.do_eval or training_args.eval_strategy != "no"
    train, evaluation = load_splits(
        data_args,
        cache_dir=model_args.cache_dir,
        token=model_args.token,
        need_eval=need_eval,
        need_train=training_args.do_train,
        seed=training_args.seed,
    )
    splits = {name: split for name, split in (("train", train), ("eval", evaluation)) if split is not None}
    label_space = build_label_space(splits, data_args.label_column_name, data_args.class_index_csv)
    logger.info(
        f"{label_space.problem_type}: {label_space.num_labels} classes (from {label_space.source}); "
        + ", ".join(f"{name} {len(ds)} clips" for name, ds in splits.items())
    )
    patchout = recipe.patchout_ratio if training_args.do_train else None  # evaluation keeps the checkpoint's
    model, feature_extractor, origin = load_classifier(
        model_args, label_space, patchout, ignore_mismatched_sizes=recipe.ignore_mismatched_sizes
    )
    if recipe.freeze_feature_encoder:
        model.freeze_feature_encoder()
    logger.info(f"Fine-tuning {origin}.")
    rate = feature_extractor.sampling_rate
    max_seconds = data_args.max_length_seconds or model.config.max_frames * feature_extractor.hop_length / rate
    balanced = recipe.balanced_sampling == "yes" or (recipe.balanced_sampling == "auto" and label_space.multi_label)
    sample_weights = None
    if balanced and "train" in splits:
        sample_weights = balanced_sample_weights(splits["train"], data_args.label_column_name, label_space)
    clips = clip_datasets(splits, data_args, label_space, rate, int(round(max_seconds * rate)), recipe.random_crop)
    trainer = MaskSpecTrainer(
        model=model,
        args=training_args,
        train_dataset=clips.get("train"),
        eval_dataset=clips.get("eval"),
        data_collator=MaskSpecDataCollator(feature_extractor),
        processing_class=feature_extractor,
        compute_metrics=compute_metrics_fn(label_space.problem_type, label_space.id2label),
        recipe=recipe,
        sample_weights=sample_weights,
    )
    metrics = _train_and_evaluate(trainer, clips, training_args)
    metrics["clips_skipped"] = _report_skipped(trainer, training_args.output_dir)
    if training_args.do_train and trainer.is_world_process_zero():
        settings = dict(
            initialization=origin,
            max_length_seconds=max_seconds,
            label_smoothing=recipe.label_smoothing if not label_space.multi_label else 0.0,
            balanced_sampling=balanced,
        )
        hyperparameters = _hyperparameters(model_args, training_args, recipe, trainer, settings)
        results = _write_card(model_args, data_args, training_args, model, hyperparameters, metrics, "eval" in splits)
        if repo_id is not None:
            _push(training_args, repo_id, commit_message_for(model_args, data_args, results))
    return metrics


def _prepare_run(data_args: DataArguments, recipe: FinetuningArguments, training_args: TrainingArguments):
    """Checks what can be checked before any data or model is loaded, and sets the Trainer up for this recipe;
    returns the Hub repo to push to at the end, or None."""
    if data_args.label_column_name is None:
        raise ValueError("--label_column_name is required for fine-tuning.")
    if not (training_args.do_train or training_args.do_eval or training_args.eval_strategy != "no"):
        raise ValueError("Nothing to do: pass --do_train and/or --do_eval.")
    if training_args.label_smoothing_factor:
        # Trainer's own smoother cannot handle multi-hot or mixed-up targets: route it to the recipe.
        recipe.label_smoothing, training_args.label_smoothing_factor = training_args.label_smoothing_factor, 0.0
    push_requested, training_args.push_to_hub = training_args.push_to_hub, False  # pushed once, at the end
    repo_id = None
    if push_requested and training_args.do_train:
        repo_id = training_args.hub_model_id or Path(training_args.output_dir).resolve().name
        check_hub_access(repo_id, token=training_args.hub_token, private=training_args.hub_private_repo)
    training_args.remove_unused_columns = False  # the collator needs the raw audio column
    # Adam's second moments of tiny gradients underflow to denormals, which x86 CPUs process ~100x slower:
    # a step can take 20x longer late in training. Flushing them to zero changes nothing that matters.
    torch.set_flush_denormal(True)
    set_seed(training_args.seed)
    return repo_id


def _train_and_evaluate(trainer: "MaskSpecTrainer", splits: dict, training_args: TrainingArguments) -> dict:
    metrics: dict = {}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()  # model, config (id2label, problem_type), feature extractor and code files
        skipped = len(trainer.skipped_clips["train"])
        train_metrics = dict(result.metrics, train_samples=len(splits["train"]) - skipped, train_clips_skipped=skipped)
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
        trainer.save_state()
        metrics.update(train_metrics)
    if "eval" in splits and (training_args.do_eval or training_args.do_train):
        eval_metrics = trainer.evaluate()
        skipped = len(trainer.skipped_clips["eval"])
        eval_metrics.update(eval_samples=len(splits["eval"]) - skipped, eval_clips_skipped=skipped)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    return metrics


def _report_skipped(trainer: "MaskSpecTrainer", output_dir: str) -> list[dict]:
    """The skipped clips of both splits, as `[{"split", "id", "reason", "error"}]`, also written to
    `clips_skipped.json` and summed up in the log."""
    skipped = [{"split": split, **clip} for split, clips in trainer.skipped_clips.items() for clip in clips.values()]
    if skipped and trainer.is_world_process_zero():
        path = Path(output_dir) / "clips_skipped.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(skipped, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(collections.Counter(c["reason"] for c in skipped).items()))
        logger.warning(f"Skipped {len(skipped)} clips that cannot be used ({reasons}); listed in {path}.")
    return skipped


def _hyperparameters(model_args, training_args, recipe, trainer, settings: dict) -> dict:
    """The run's settings for the model card (`settings`: those decided on the way, e.g. the crop length)."""
    return {
        "base_model": model_args.model_name_or_path,
        "learning_rate": training_args.learning_rate,
        "train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "optimizer": str(getattr(training_args.optim, "value", training_args.optim)),
        "weight_decay": training_args.weight_decay,
        "lr_scheduler": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "warmup_steps": training_args.warmup_steps,
        "num_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "global_steps": trainer.state.global_step,
        "seed": training_args.seed,
        "bf16": training_args.bf16,
        "mixup_alpha": recipe.mixup_alpha,
        "specaugment": f"freq {recipe.freq_mask_bins} bins, time {recipe.time_mask_frames} frames per "
        f"{recipe.time_mask_reference_frames}",
        "patchout_ratio": trainer.model.config.patchout_ratio,
        "layer_decay": recipe.layer_decay,
        "random_crop": recipe.random_crop,
        **settings,
    }


def _write_card(model_args, data_args, training_args, model, hyperparameters, metrics, has_eval) -> dict:
    """Writes the model card; returns the eval results it reports."""
    results = {key: metrics[f"eval_{key}"] for key in CARD_RESULT_KEYS if f"eval_{key}" in metrics}
    name = data_args.dataset_name
    hub_dataset = name if name and not os.path.exists(name) else None  # the card's model-index takes Hub ids only
    data_name = name or (f"audiofolder {Path(data_args.data_dir).name}" if data_args.data_dir else None)
    write_model_card(
        training_args.output_dir,
        task="audio-classification",
        config=model.config,
        hyperparameters=hyperparameters,
        results=results,
        datasets=[data_name] if data_name else [],
        base_model=model_args.model_name_or_path,
        eval_dataset=hub_dataset if has_eval else None,
        eval_dataset_config=data_args.dataset_config_name,
        eval_split=data_args.eval_split_name if has_eval else None,
    )
    return results


def _push(training_args: TrainingArguments, repo_id: str, message: str) -> None:
    token, private = training_args.hub_token, training_args.hub_private_repo
    url = upload_folder(training_args.output_dir, repo_id, message, token=token, private=private)
    logger.info(f"Pushed {training_args.output_dir} to {url}: {message}")


def commit_message_for(model_args: ModelArguments, data_args: DataArguments, results: dict) -> str:
    """'Fine-tune <model> on <data>: eval accuracy 0.8123' (or mAP), the commit message of the Hub upload."""
    data = data_args.dataset_name or (Path(data_args.data_dir).name if data_args.data_dir else "local data")
    message = f"Fine-tune {model_args.model_name_or_path} on {data}"
    for key in ("accuracy", "mAP"):
        if isinstance(results.get(key), float) and math.isfinite(results[key]):
            return f"{message}: eval {key} {results[key]:.4f}"
    return message


__all__ = ["CARD_RESULT_KEYS", "FinetuningArguments", "MaskSpecTrainer", "commit_message_for", "finetune"]
