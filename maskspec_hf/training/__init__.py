"""Training commands and the pieces they share.

- `pretraining`: `pretrain(model_args, data_args, training_args)`, MaskSpec pre-training with Accelerate (one step at
  a time); `pretraining_arguments` (its options and checks), `pretraining_setup` (set-up and resume),
  `pretraining_data` (the data and its resumable batches), `pretraining_report` (`final/` and its model card);
  `checkpoints` (atomic, checked, resumable checkpoints);
- `finetuning`: `finetune(...)`, classification with `transformers.Trainer`; `augment` (SpecAugment, mixup, ...);
- shared: `tracking` (the one logging set-up, trackers, JSONL logs), `optim` (parameter groups, learning-rate
  scaling, schedules, layer decay), `figures` (reconstruction and loss figures).
"""
