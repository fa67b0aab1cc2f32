from pathlib import Path

from setuptools import find_packages, setup


setup(
    name="maskspec-hf",
    version="0.1.0",
    description="MaskSpec: self-supervised masked spectrogram pre-training for audio, as Hugging Face Transformers models",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["maskspec_hf", "maskspec_hf.*"]),
    package_data={"maskspec_hf": ["metrics/*/*.py"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "transformers>=5,<6",
        "datasets>=4",
        "accelerate>=1.0",
        "evaluate>=0.4",
        "safetensors",
        "huggingface-hub",
        "torchcodec",
        "numpy",
        "soxr",
        "soundfile",
        "scikit-learn",
        "scipy",
    ],
    extras_require={
        "training": ["tensorboard", "matplotlib", "tqdm"],
        # hearvalidator declares tensorflow as a dependency; it is installed with `pip install --no-deps` (Makefile).
        "tests": ["pytest", "pytest-timeout", "tensorboard", "matplotlib", "onnx", "onnxscript", "onnxruntime"],
    },
    entry_points={
        "console_scripts": [
            "maskspec-pretrain=maskspec_hf.pretraining:cli",
            "maskspec-finetune=maskspec_hf.finetuning:cli",
            "maskspec-probe=maskspec_hf.probe:cli",
            "maskspec-classify=maskspec_hf.inference:cli",
        ]
    },
)
