"""The evaluation set: CIFAR-10 images and labels in an ``.npz`` file.

``images`` may be uint8 (N, 32, 32, 3) as torchvision's ``CIFAR10.data`` holds them, or
(N, 3072) rows in the official python batches' R|G|B planar layout; ``labels`` int (N,).
"""

from pathlib import Path

import numpy as np
import torch

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


class EvalSetError(ValueError):
    pass


def to_nchw(images: np.ndarray) -> np.ndarray:
    """Any accepted layout to uint8 (N, 3, 32, 32)."""
    if images.ndim == 2 and images.shape[1] == 3072:
        return images.reshape(-1, 3, 32, 32)
    if images.ndim == 4 and images.shape[1:] == (32, 32, 3):
        return images.transpose(0, 3, 1, 2)
    if images.ndim == 4 and images.shape[1:] == (3, 32, 32):
        return images
    raise EvalSetError(f"images has shape {images.shape}; expected (N, 32, 32, 3) or (N, 3072) uint8.")


def load_eval_set(path: Path, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 (N, 3, 32, 32) in [0, 1] and labels as int64 (N,)."""
    if not Path(path).is_file():
        raise EvalSetError(f"Evaluation set {path} does not exist.")
    with np.load(path, allow_pickle=False) as archive:
        if "images" not in archive or "labels" not in archive:
            raise EvalSetError(f"{path} must hold the arrays 'images' and 'labels'.")
        images, labels = archive["images"], archive["labels"]
    if images.dtype != np.uint8:
        raise EvalSetError(f"images must be uint8, got {images.dtype}.")
    images = to_nchw(images)
    if labels.shape != (images.shape[0],):
        raise EvalSetError(f"labels has shape {labels.shape}; expected ({images.shape[0]},).")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    pixels = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return pixels, torch.from_numpy(labels.astype(np.int64))


def save_eval_set(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write an evaluation set in torchvision's (N, 32, 32, 3) layout."""
    nchw = to_nchw(np.asarray(images, dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=nchw.transpose(0, 2, 3, 1), labels=np.asarray(labels, dtype=np.int64))


def download_cifar10(path: Path, *, split: str, count: int | None, cache: Path) -> Path:
    """Build an evaluation set from torchvision's CIFAR-10 (needs the internet once)."""
    from torchvision.datasets import CIFAR10

    dataset = CIFAR10(root=str(cache), train=(split == "train"), download=True)
    images, labels = dataset.data, np.asarray(dataset.targets)
    if count is not None:
        images, labels = images[:count], labels[:count]
    save_eval_set(path, images, labels)
    return path
