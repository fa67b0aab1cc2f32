"""The three official sources: where their checkpoints come from, how their inputs look, what their authors report.

Facts come from the official code (WangHelin1997/MaskSpec, nttcslab/msm-mae, facebookresearch/AudioMAE): image
orientation, mel bins, frames per image, front end, licence, and the differences a converted model keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .vit_mapping import FREQ_TIME, TIME_FREQ


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One checkpoint the authors publish."""

    name: str
    task: str  # "pretraining" or "audio-classification"
    where: str
    reported: tuple[tuple[str, str, str], ...] = ()  # (task / dataset, metric, score) as the authors report them
    match: str = ""  # a part of the file's path that identifies this checkpoint (MSM-MAE's run folder name)


@dataclass(frozen=True)
class Source:
    """An official implementation whose checkpoints `maskspec-convert` reads."""

    name: str
    title: str
    repository: str
    paper: str
    citation: str
    licence: str  # what the card says about the weights' licence
    hub_licence: dict  # the card's YAML licence fields
    layout: str  # FREQ_TIME or TIME_FREQ
    num_mel_bins: int
    front_end: str  # `MaskSpecFeatureExtractor.from_front_end` name
    image_frames: dict = field(default_factory=dict)  # task -> frames of the model's input image
    decoder_heads: int = 16  # not in the weights: the official decoder's head count
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False
    checkpoints: tuple[PublishedCheckpoint, ...] = ()
    differences: dict = field(default_factory=dict)  # task -> known differences of a converted model
    redistributable: bool = True
    decoder_without_cls_note: str = ""  # what differs when a checkpoint's decoder has no class token


MASKSPEC = Source(
    name="maskspec",
    title="MaskSpec",
    repository="https://github.com/WangHelin1997/MaskSpec",
    paper="Masked Spectrogram Prediction For Self-Supervised Audio Pre-Training (Chong et al., ICASSP 2023), "
    "[arXiv:2204.12768](https://arxiv.org/abs/2204.12768)",
    citation="@inproceedings{chong2023maskspec,\n  title = {Masked Spectrogram Prediction for Self-Supervised Audio "
    "Pre-Training},\n  author = {Chong, Dading and Wang, Helin and Zhou, Peilin and Zeng, Qingcheng},\n"
    "  booktitle = {ICASSP},\n  year = {2023}\n}",
    licence="Apache-2.0: the weights are published with the Apache-2.0 code (the README states no separate weights "
    "licence).",
    hub_licence={"license": "apache-2.0"},
    layout=FREQ_TIME,
    num_mel_bins=128,
    front_end="maskspec",
    image_frames={"pretraining": 992, "audio-classification": 1000},
    decoder_heads=16,
    mask_ratio=0.75,
    norm_pix_loss=True,
    checkpoints=(
        PublishedCheckpoint(
            "AudioSet_Pretrained_Finetuned.pth (ViT-Base, AudioSet fine-tuned)",
            "audio-classification",
            "https://drive.google.com/file/d/1TwP9JMq6EViaSXAhpNMuQW56RIbk-v-v/view",
            (("AudioSet (eval)", "mAP", "0.471"),),
            "AudioSet_Pretrained_Finetuned",
        ),
        PublishedCheckpoint(
            "pre-trained ViT-Base (AudioSet, masked spectrogram prediction)",
            "pretraining",
            "https://drive.google.com/file/d/1hmbsqmMEB7j5MNq8L9w_htOe7UW7QKwb/view",
            (
                ("AudioSet, fine-tuned", "mAP", "0.471"),
                ("OpenMIC-2018, fine-tuned", "mAP", "0.854"),
                ("ESC-50, fine-tuned", "accuracy", "0.982"),
                ("Speech Commands V2, fine-tuned", "accuracy", "0.976"),
                ("DCASE2019 Task 1A, fine-tuned", "accuracy", "0.823"),
            ),
        ),
    ),
    differences={
        "audio-classification": (
            "Clips shorter than 10 s: the authors zero-pad the waveform to 10 s (320000 samples; trainer/test.py and "
            "their datasets) so the model always sees 1000 frames of content; MaskSpec-HF's feature extractor pads "
            "the features and masks the padding instead, which changes the logits substantially on short clips "
            "(measured with random weights: by up to 4.4 on a 2 s clip, 1.2 on a 6 s one, against 1.3e-6 on a "
            "clip zero-padded to 10 s first). For the authors' numbers, zero-pad clips to 10 s before the feature "
            "extractor (`np.pad(wave, (0, 320000 - len(wave)))`). The official model's bicubic stretch of shorter "
            "spectrograms to 1000 frames (`reshape_wav2img`) never triggers on that path and is not reproduced.",
            "Clips longer than 10 s: the authors keep the first 10 s; MaskSpec-HF averages the logits of "
            "1000-frame windows overlapping by 50 %.",
            "The official forward casts the waveform to float16 before the front end; MaskSpec-HF computes in "
            "float32 (differences of the order of float16 rounding of the waveform).",
        ),
        "pretraining": (
            "The official pre-training image is 992 frames; the fixed sinusoidal positions let MaskSpec-HF take any "
            "length.",
            "Pre-trained with `norm_pix_loss=True` (the decoder predicts per-patch normalized targets); the "
            "converted config keeps it.",
        ),
    },
)

MSM_MAE = Source(
    name="msm-mae",
    title="MSM-MAE",
    repository="https://github.com/nttcslab/msm-mae",
    paper="Masked Spectrogram Modeling using Masked Autoencoders for Learning General-purpose Audio Representation "
    "(Niizumi et al., HEAR 2021, PMLR 166), [arXiv:2204.12260](https://arxiv.org/abs/2204.12260)",
    citation="@inproceedings{niizumi2022masked,\n  title = {Masked Spectrogram Modeling using Masked Autoencoders for "
    "Learning General-purpose Audio Representation},\n  author = {Niizumi, Daisuke and Takeuchi, Daiki and Ohishi, "
    "Yasunori and Harada, Noboru and Kashino, Kunio},\n  booktitle = {HEAR: Holistic Evaluation of Audio "
    "Representations (NeurIPS 2021 Competition)},\n  series = {PMLR},\n  volume = {166},\n  year = {2022}\n}",
    licence="NTT's SOFTWARE LICENSE AGREEMENT FOR EVALUATION (https://github.com/nttcslab/msm-mae/blob/main/LICENSE): "
    "the weights may be used internally to test and evaluate the paper's methods only; they may not be distributed "
    "or transferred to third parties. A converted folder inherits this licence: do not upload it to the Hub or "
    "share it; every user converts the weights they obtained from NTT's releases themselves.",
    hub_licence={
        "license": "other",
        "license_name": "ntt-software-license-agreement-for-evaluation",
        "license_link": "https://github.com/nttcslab/msm-mae/blob/main/LICENSE",
    },
    layout=FREQ_TIME,
    num_mel_bins=80,
    front_end="msm_mae",
    decoder_heads=6,
    mask_ratio=0.75,
    norm_pix_loss=False,
    redistributable=False,
    decoder_without_cls_note="Trained with --no_cls_token: the official decoder still drops the first token "
    "(`x[:, 1:]`), so each visible patch there gets the next visible patch's embedding; MaskSpec-HF's decoder does not, "
    "so reconstructions differ from the official code's (the encoder is unaffected; the published weights have a "
    "class token).",
    checkpoints=tuple(
        PublishedCheckpoint(
            f"{name}/checkpoint-100.pth",
            "pretraining",
            "https://github.com/nttcslab/msm-mae/releases",
            tuple(
                (f"{task}, linear evaluation (EVAR)", "accuracy", score)
                for task, score in zip(
                    ("ESC-50", "US8K", "SPCV2", "VoxCeleb1", "VoxForge", "CREMA-D", "GTZAN", "NSynth", "Surge"),
                    scores,
                )
            ),
            name,
        )
        for name, scores in (
            ("80x512p16x16_paper", ("89.1", "84.3", "93.1", "56.1", "97.5", "70.1", "79.3", "76.9", "37.5")),
            ("80x512p16x16_0425", ("88.9", "84.0", "92.4", "56.5", "96.8", "67.6", "81.4", "76.1", "37.4")),
            ("80x208p16x16_0422", ("87.1", "82.2", "91.1", "49.7", "95.6", "66.9", "75.9", "76.5", "37.8")),
        )
    ),
    differences={
        "pretraining": (
            "The authors' features (EVAR, HEAR) are 3840-d: per 16 frames, the five frequency patches' outputs "
            "concatenated, the input cut into separately encoded windows of the checkpoint's frame count; "
            "MaskSpec-HF's `pooler_output` is the 768-d mean over all patches. The HEAR wrapper's timestamp "
            "embeddings (frequency patches concatenated, windows of `max_frames`) equal the authors' inside whole "
            "windows; the last, partial window differs (the official runtime zero-pads it to a whole window, "
            "attends to the padding and keeps a trailing partial patch as one more step; measured with random "
            "weights: up to 0.75 on those steps), and its timestamps start at 0 where ours are frame centres. The "
            "probe's `--pooling freq-concat` is the closest clip readout (it adds the max over time).",
            "Normalization: the official runtime normalizes each batch by its own mean and std; the converted "
            "feature extractor uses fixed statistics (the training `--norm_stats` stored in the checkpoint, else "
            "-7.1 / 4.2, the AudioSet statistics NTT ships for this front end in nttcslab/m2d). Fit your own with "
            "`compute_normalization_stats`.",
            "Masking count (pre-training only): the official code keeps int(n * (1 - ratio)) patches visible, "
            "MaskSpec-HF masks floor(n * ratio): with 65 patches (80x208) at 0.75 that is 16 visible against 17.",
            "The weights `80x512p16x16_paper` have a slightly different decoder (the authors: 'cannot be used for "
            "visualizations'); when its decoder is not a plain ViT decoder it is left out and the folder holds the "
            "encoder only.",
        ),
    },
)

AUDIOMAE = Source(
    name="audiomae",
    title="AudioMAE",
    repository="https://github.com/facebookresearch/AudioMAE",
    paper="Masked Autoencoders that Listen (Huang et al., NeurIPS 2022), "
    "[arXiv:2207.06405](https://arxiv.org/abs/2207.06405)",
    citation="@inproceedings{huang2022amae,\n  title = {Masked Autoencoders that Listen},\n  author = {Huang, Po-Yao "
    "and Xu, Hu and Li, Juncheng and Baevski, Alexei and Auli, Michael and Galuba, Wojciech and Metze, Florian and "
    "Feichtenhofer, Christoph},\n  booktitle = {NeurIPS},\n  year = {2022}\n}",
    licence="CC BY-NC 4.0 (the repository's LICENSE file; its README says CC-BY 4.0): attribution, non-commercial "
    "use only. A converted folder inherits it.",
    hub_licence={"license": "cc-by-nc-4.0"},
    layout=TIME_FREQ,
    num_mel_bins=128,
    front_end="audiomae",
    image_frames={"pretraining": 1024, "audio-classification": 1024},
    decoder_heads=16,
    mask_ratio=0.8,
    norm_pix_loss=True,
    checkpoints=(
        PublishedCheckpoint(
            "ViT-B, AS-2M pretrained + fine-tuned",
            "audio-classification",
            "https://drive.google.com/file/d/18EsFOyZYvBYHkJ7_n7JFFWbj6crz01gq/view",
            (("AudioSet (eval, 19148 clips)", "mAP", "0.473"),),
        ),
        PublishedCheckpoint(
            "ViT-B, AS-2M pretrained",
            "pretraining",
            "https://drive.google.com/file/d/1ni_DV4dRf7GxM8k-Eirx71WP9Gg89wwu/view",
            (("AudioSet-2M, fine-tuned", "mAP", "0.473"), ("AudioSet-20K, fine-tuned", "mAP", "0.370")),
        ),
    ),
    differences={
        "audio-classification": (
            "Inputs are 1024 frames (10.24 s): like the official dataset, the feature extractor pads (the raw "
            "filterbank with zeros, attended as content) or truncates every clip to 1024 frames. Pass "
            "`truncation=False` to the feature extractor to classify a longer clip whole instead (the classifier "
            "then averages 1024-frame windows).",
        ),
        "pretraining": (
            "Encoder only: the published pre-training decoder is AudioMAE's local-attention one (`decoder_mode=1`: "
            "16 Swin-style window-attention blocks with a continuous relative position bias), which MaskSpec-HF "
            "has no counterpart for; its weights are left out. Fine-tuning or probing needs the encoder only.",
            "The position table is AudioMAE's fixed 2-D sinusoid, whose channel halves encode frequency then time "
            "(MaskSpec-HF's encode time first), so it is kept as a table for the 64 x 8 patch grid: inputs are at "
            "most 1024 frames (the feature extractor truncates to 1024 by default; longer inputs go through the "
            "probe, HEAR and the classifier in 1024-frame windows).",
        ),
    },
)

SOURCES = {source.name: source for source in (MASKSPEC, MSM_MAE, AUDIOMAE)}


def published_checkpoints(source: Source, task: str, checkpoint_path: str = "") -> list[PublishedCheckpoint]:
    """The published checkpoints of `task` ("pretraining" or "audio-classification"); only the one `checkpoint_path`
    names, when it names one (MSM-MAE's run folders `80x208p16x16_0422/...`)."""
    candidates = [checkpoint for checkpoint in source.checkpoints if checkpoint.task == task]
    named = [checkpoint for checkpoint in candidates if checkpoint.match and checkpoint.match in str(checkpoint_path)]
    return named or candidates


def get_source(name: str) -> Source:
    key = name.lower().replace("_", "-")
    if key not in SOURCES:
        raise ValueError(f"Unknown --source {name!r}; choose one of {', '.join(SOURCES)}.")
    return SOURCES[key]


__all__ = [
    "AUDIOMAE",
    "MASKSPEC",
    "MSM_MAE",
    "SOURCES",
    "PublishedCheckpoint",
    "Source",
    "get_source",
    "published_checkpoints",
]
