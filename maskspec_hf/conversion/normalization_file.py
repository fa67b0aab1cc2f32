"""MaskSpec's per-mel-bin statistics file (`audioset/mean_std_128.npy` of WangHelin1997/MaskSpec), read safely.

The official front end computes `(log(mel + 1e-5) + 4.5) / 5` and then `(x - frame_mean[bin]) / frame_std[bin]`,
with statistics of the already rescaled values (audioset/get_mean_std.py). The file is a NumPy `.npy` holding a
pickled dict `{"all_mean", "all_std", "frame_mean" [bins], "frame_std" [bins]}`, so `numpy.load(allow_pickle=False)`
cannot read it and `allow_pickle=True` would run whatever the pickle says. We read it with an unpickler that
rebuilds NumPy arrays and scalars and nothing else; a plain `.npz` with `frame_mean` and `frame_std` arrays, or a
`[2, bins]` `.npy` array, is read with `allow_pickle=False`.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np


try:
    from numpy._core import multiarray
except ImportError:  # NumPy 1
    from numpy.core import multiarray

# The only globals a pickled NumPy array or scalar needs, under the NumPy 1 and NumPy 2 module names.
NUMPY_GLOBALS = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    NUMPY_GLOBALS[(_module, "_reconstruct")] = multiarray._reconstruct
    NUMPY_GLOBALS[(_module, "scalar")] = multiarray.scalar


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        allowed = NUMPY_GLOBALS
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"GLOBAL {module}.{name}")
        return allowed[(module, name)]


def _load_npy(path: Path):
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(handle)
        if dtype != np.dtype(object):
            return np.load(path, allow_pickle=False)
        try:
            array = _NumpyOnlyUnpickler(io.BytesIO(handle.read())).load()
        except pickle.UnpicklingError as err:
            raise ValueError(
                f"Refusing to read {path}: its pickle holds {str(err).removeprefix('GLOBAL ')}, not only NumPy "
                "arrays (MaskSpec's mean_std_128.npy holds a dict of arrays); it was not unpickled."
            ) from None
    return array.item() if isinstance(array, np.ndarray) and array.shape == () else array


def _as_statistics(contents, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(contents, "keys") and {"frame_mean", "frame_std"} <= set(contents.keys()):
        return np.asarray(contents["frame_mean"]), np.asarray(contents["frame_std"])
    if isinstance(contents, np.ndarray) and contents.ndim == 2 and contents.shape[0] == 2:
        return contents[0], contents[1]
    raise ValueError(
        f"{path} holds no per-bin statistics: expected MaskSpec's dict with 'frame_mean' and 'frame_std' "
        "(audioset/mean_std_128.npy), an .npz with those arrays, or a [2, bins] array."
    )


def read_frame_statistics(path: str | Path, num_bins: int) -> tuple[list[float], list[float]]:
    """`(frame_mean, frame_std)`, `num_bins` floats each, from MaskSpec's statistics file at `path`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--normalization_file {path} does not exist.")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            mean, std = _as_statistics(archive, path)
    else:
        mean, std = _as_statistics(_load_npy(path), path)
    if mean.shape != (num_bins,) or std.shape != (num_bins,):
        raise ValueError(
            f"{path}: frame_mean and frame_std must have {num_bins} values (one per mel bin), got shapes "
            f"{mean.shape} and {std.shape}."
        )
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise ValueError(f"{path}: frame_mean must be finite and frame_std finite and positive.")
    return [float(v) for v in mean.astype(np.float32)], [float(v) for v in std.astype(np.float32)]


def maskspec_normalization(frame_mean, frame_std) -> tuple[list[float], list[float]]:
    """Per-bin `(mean, std)` on the raw log-mel equal to MaskSpec's two steps: mean = 5 m - 4.5, std = 5 s."""
    return [5.0 * m - 4.5 for m in frame_mean], [5.0 * s for s in frame_std]


__all__ = ["NUMPY_GLOBALS", "maskspec_normalization", "read_frame_statistics"]
