"""Loading the authors' checkpoint files without running their pickles.

The official MaskSpec, MSM-MAE and AudioMAE checkpoints are `torch.save` pickles written by MAE's `save_model`:
`{"model": state_dict, "optimizer": ..., "epoch": int, "scaler": ..., "args": argparse.Namespace}` (released files
may hold only some of these). `torch.load(weights_only=True)` rebuilds tensors and plain containers only; on top of
that we allow exactly the classes those containers hold: `argparse.Namespace` (the training arguments) and pathlib
paths (submitit's launchers store `args.output_dir` as a `pathlib.Path`). Anything else is refused with an error that
names the file and the global, never unpickled in full. A plain state dict and a `.safetensors` file work too.
"""

from __future__ import annotations

import argparse
import pathlib
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch


# (class, the name a pickle refers to it by): pathlib's classes live in `pathlib._local` on newer Pythons, and a
# Windows path becomes a pure path, which never touches the file system.
SAFE_GLOBALS = [
    (argparse.Namespace, "argparse.Namespace"),
    (pathlib.PosixPath, "pathlib.PosixPath"),
    (pathlib.PurePosixPath, "pathlib.PurePosixPath"),
    (pathlib.PureWindowsPath, "pathlib.WindowsPath"),
    (pathlib.PureWindowsPath, "pathlib.PureWindowsPath"),
]

_GLOBAL_NAME = re.compile(r"GLOBAL ([\w.]+)")


@dataclass
class LoadedCheckpoint:
    """What an official checkpoint file holds, safely loaded."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    args: dict = field(default_factory=dict)  # the training arguments (`argparse.Namespace`) as a dict, if stored
    epoch: int | None = None
    container_keys: tuple[str, ...] = ()  # the top-level keys of the file (empty for a bare state dict)


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Load `path` (a `.pth`/`.pt`/`.ckpt` pickle or a `.safetensors` file) into a `LoadedCheckpoint`.

    Raises `FileNotFoundError` when the file is missing and `ValueError` when it holds a global outside the
    allow-list or no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file {path} does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return LoadedCheckpoint(path=path, state_dict=_strip_module_prefix(load_file(str(path))))
    contents = _torch_load(path)
    state_dict = _find_state_dict(contents, path)
    loaded = LoadedCheckpoint(path=path, state_dict=_strip_module_prefix(state_dict))
    if contents is not state_dict:
        loaded.container_keys = tuple(str(key) for key in contents)
        args = contents.get("args")
        loaded.args = dict(vars(args)) if isinstance(args, argparse.Namespace) else dict(args or {})
        epoch = contents.get("epoch")
        loaded.epoch = int(epoch) if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else None
    return loaded


def _torch_load(path: Path):
    """`torch.load(weights_only=True)` with `SAFE_GLOBALS` allowed; refusals become a one-line `ValueError`."""
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        match = _GLOBAL_NAME.search(str(err))
        what = f"the global `{match.group(1)}`" if match else "an object"
        allowed = ", ".join(sorted({name for _, name in SAFE_GLOBALS}))
        raise ValueError(
            f"Refusing to load {path}: it holds {what}, which is not on the allow-list of the official checkpoints "
            f"(tensors, plain containers, {allowed}). The file is not an official checkpoint or was re-saved with "
            "other objects; it was not unpickled."
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint: {str(err).splitlines()[0]}") from None


def _is_state_dict(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(torch.is_tensor(v) for v in value.values())


def _find_state_dict(contents, path: Path) -> dict[str, torch.Tensor]:
    """The weights: the file itself when it is a bare state dict, else its `model` (MAE) or `state_dict` entry."""
    if _is_state_dict(contents):
        return contents
    if isinstance(contents, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if _is_state_dict(contents.get(key)):
                return contents[key]
        keys = ", ".join(map(str, list(contents)[:10]))
        raise ValueError(f"{path} holds no state dict: expected a 'model' entry of tensors, found keys {keys}.")
    raise ValueError(f"{path} holds a {type(contents).__name__}, not a state dict.")


def _strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` prefix of weights saved from a (Distributed)DataParallel wrapper."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key.removeprefix("module."): value for key, value in state_dict.items()}
    return dict(state_dict)


__all__ = ["SAFE_GLOBALS", "LoadedCheckpoint", "load_checkpoint"]
