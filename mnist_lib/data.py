"""MNIST / Fashion-MNIST as tensors: loading (torchvision IDX layout, the course's PNG tars or folders),
checking, the seeded validation split, batching and train-only augmentation. Each split is decoded once
into one tensor and a batch is an index into it (on the training device): no per-sample decoding."""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from mnist_lib.config import DATA_FORMATS, TrainConfig, choice
from mnist_lib.errors import MnistLibError
from mnist_lib.files import write_atomic

# Per-dataset mean/std of the [0, 1] training pixels (the assignment's 0.1307 / 0.3081 for MNIST).
NORMALIZATION = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}
CLASS_NAMES = {"mnist": [str(d) for d in range(10)],
               "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]}
# torchvision's dataset class per dataset, also the folder under <root> (torchvision is imported only to download)
TORCHVISION_CLASSES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
# split -> (images, labels), as torchvision names them in <root>/<Class>/raw/
IDX_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """An explicit argument, else $MNIST_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get("MNIST_DATA_DIR") or "data")


# --------------------------------------------------------------------------- IDX files
def read_idx(path: Path, kind: str) -> torch.Tensor:
    """An uncompressed IDX file of ``kind`` "images" (N x 28 x 28) or "labels" (N) as a uint8 tensor, checked
    first: its magic number, and a size that matches its header (a truncated download is the usual failure)."""
    dims = 3 if kind == "images" else 1
    try:
        content = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise MnistLibError(f"cannot read {path}: {exc.strerror}") from None
    if len(content) < 4 + 4 * dims:
        raise MnistLibError(f"{path} is truncated (only {len(content)} header bytes): download it again")
    magic, *shape = struct.unpack(f">{1 + dims}I", content[:4 + 4 * dims].tobytes())
    if magic != 0x0800 | dims:  # 0x08: unsigned bytes, then the number of dimensions
        raise MnistLibError(f"{path} has magic number {magic:#010x}, expected {0x0800 | dims:#010x} "
                            f"for IDX {kind}: is it the right (uncompressed) file?")
    expected = 4 + 4 * dims + int(np.prod(shape))
    if len(content) != expected:
        raise MnistLibError(f"{path} is {len(content):,} bytes but its header promises {expected:,} "
                            f"({'x'.join(map(str, shape))}): the file is truncated or corrupt, download it again")
    if kind == "images" and shape[1:] != [28, 28]:
        raise MnistLibError(f"{path} holds {shape[1]}x{shape[2]} images, expected 28x28")
    return torch.from_numpy(content[4 + 4 * dims:]).reshape(shape)


def _stage_fashion_mnist(root: Path) -> Path:
    """torchvision only looks in <root>/FashionMNIST/raw; Debian's package ships the four original .gz
    files. Put them there (under ./data if <root> is read-only, a shared data folder); return that folder."""
    for candidate in (root, Path("data")):
        if candidate.exists() and not candidate.stat().st_mode & 0o222:
            continue  # no write bits: read-only by intent, even for root
        target = candidate / "FashionMNIST" / "raw"
        try:
            target.mkdir(parents=True, exist_ok=True)
            # Decompressed here: Debian's .gz files are not byte-identical to torchvision's (other
            # MD5s), so torchvision's offline "download" would reject them and go to the network.
            for gz in sorted(DEBIAN_FASHION_MNIST.glob("*-ubyte.gz")):
                if not (target / gz.stem).exists():
                    write_atomic(target / gz.stem, gzip.decompress(gz.read_bytes()))
            return target
        except OSError:
            continue
    raise MnistLibError(f"cannot stage Fashion-MNIST from {DEBIAN_FASHION_MNIST}: {root} and ./data are not writable")


def idx_folder(dataset: str, root: Path, download: bool = True) -> Path:
    """The folder of ``dataset``'s four IDX files under ``root``, staged or downloaded when one is absent;
    a failed download leaves none of the folders it made."""
    raw = root / TORCHVISION_CLASSES[dataset] / "raw"
    # torchvision refuses to read either split unless all four files are there
    if all((raw / n).is_file() for pair in IDX_FILES.values() for n in pair):
        return raw
    if dataset == "fashion-mnist" and DEBIAN_FASHION_MNIST.is_dir():
        return _stage_fashion_mnist(root)
    how = ("run `apt-get install dataset-fashion-mnist`" if dataset == "fashion-mnist"
           else "set MNIST_DATA_DIR (or --data-dir) to the folder that holds MNIST/raw")
    missing = (f"no {dataset} data in {raw} (expected {', '.join(IDX_FILES[True] + IDX_FILES[False])}): {how}, "
               f"or allow torchvision to download")
    if not download:
        raise MnistLibError(missing)
    made = [folder for folder in (raw, *raw.parents) if not folder.exists()]  # deepest first
    try:
        import torchvision
        getattr(torchvision.datasets, TORCHVISION_CLASSES[dataset])(str(root), train=False, download=True)
    except Exception as exc:  # no network, read-only root, bad mirror: all mean "not here"
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty: keep it and its parents
                break
        raise MnistLibError(f"{missing} (download failed: {str(exc).splitlines()[0][:120]})") from None
    return raw


def load_split(dataset: str, data_dir: str | os.PathLike | None, data_format: str, train: bool,
               download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as (uint8 images N x 28 x 28, int64 labels) from the chosen format, checked first."""
    choice("data_format", data_format, DATA_FORMATS)
    root, name = resolve_data_dir(data_dir), "train" if train else "test"
    if data_format != "idx":
        from mnist_lib.course import load_course_tar, load_png_folder  # the course's PNG format
        return load_course_tar(root / f"{name}.tar") if data_format == "tar" else load_png_folder(root / name)
    # What torchvision's reader returns, without importing torchvision (~170 MiB of resident memory).
    images_file, labels_file = (idx_folder(dataset, root, download) / n for n in IDX_FILES[train])
    images, labels = read_idx(images_file, "images"), read_idx(labels_file, "labels").long()
    if len(images) != len(labels):
        raise MnistLibError(f"{images_file} holds {len(images):,} images but {labels_file} "
                            f"holds {len(labels):,} labels: the files belong to different downloads")
    bad = (labels > 9).nonzero()  # uint8 on disk: never below 0
    if len(bad):
        i = int(bad[0])
        raise MnistLibError(f"{labels_file}: label {int(labels[i])} at index {i} is outside 0-9")
    return images, labels


# --------------------------------------------------------------------------- tensors ready to train
@dataclass
class Split:
    """One split. ``stored`` is what is kept in memory: uint8 pixels N x 1 x 28 x 28 (4x smaller
    than floats), normalized per batch as `batches` hands them out with ``mean``/``std``; or an
    already-normalized float tensor (``mean`` 0, ``std`` 1), used as it is."""
    stored: torch.Tensor
    labels: torch.Tensor  # int64 N
    mean: float = 0.0
    std: float = 1.0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def images(self) -> torch.Tensor:
        """The rows, normalized (a new float32 tensor for uint8 storage: `batches` normalizes per batch)."""
        if self.stored.dtype != torch.uint8:
            return self.stored
        # The arithmetic of the former whole-split normalization, so bit-identical values.
        return self.stored.float().div_(255.0).sub_(self.mean).div_(self.std)

    @property
    def device(self) -> torch.device:
        return self.labels.device

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.stored.to(device), self.labels.to(device), self.mean, self.std)

    def __getitem__(self, index) -> "Split":
        """The rows ``index`` (a slice or an index tensor) as a Split of the same storage."""
        return Split(self.stored[index], self.labels[index], self.mean, self.std)


@dataclass
class DataSplits:
    train: Split
    val: Split
    test: Split
    dataset: str
    mean: float
    std: float

    @property
    def class_names(self) -> list[str]:
        return CLASS_NAMES[self.dataset]

    def to(self, device: torch.device | str) -> "DataSplits":
        return replace(self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device))

    def unnormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels, for pictures (uint8 pixels are scaled only)."""
        return images.float() / 255.0 if images.dtype == torch.uint8 else (images * self.std + self.mean).clamp(0, 1)


def split_train_val(n: int, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and validation parts; the same for a given (n, val_size, seed)."""
    if val_size >= n:
        raise MnistLibError(f"val_size {val_size} leaves no training images out of {n}: lower val_size")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def load_data(dataset: str = "mnist", data_dir: str | os.PathLike | None = None, data_format: str = "idx",
              val_size: int = 5000, limit: int | None = None, download: bool = True) -> DataSplits:
    """Train / validation / test splits as CPU tensors. The validation split is carved from the training
    set with a fixed seed (the same images for every training seed, so seeds differ only in training);
    ``limit`` keeps the first N of the remaining training images; the test set is always whole."""
    train_images, train_labels = load_split(dataset, data_dir, data_format, True, download)
    test_images, test_labels = load_split(dataset, data_dir, data_format, False, download)
    train_idx, val_idx = split_train_val(len(train_labels), val_size)
    if limit is not None:
        if limit > len(train_idx):
            raise MnistLibError(f"limit {limit:,} is larger than the {len(train_idx):,} training images "
                                f"left after the {val_size:,}-image validation split: lower limit")
        train_idx = train_idx[:limit]
    mean, std = NORMALIZATION[dataset]
    # Kept as uint8 (a quarter of the float32 memory); batches are normalized as they are made.
    whole = Split(train_images.unsqueeze(1), train_labels, mean, std)
    test = Split(test_images.unsqueeze(1).contiguous(), test_labels, mean, std)
    return DataSplits(whole[train_idx], whole[val_idx], test, dataset, mean, std)


def load_config_data(config: TrainConfig) -> DataSplits:
    """`load_data` with a TrainConfig's data fields."""
    return load_data(config.dataset, config.data_dir, config.data_format, config.val_size, config.limit,
                     config.download)


def batches(split: Split, batch_size: int,
            generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches (normalized float32 images, labels) of the split, shuffled when a generator is given."""
    if generator is None:  # slices: views, no copy
        parts = (slice(start, start + batch_size) for start in range(0, len(split), batch_size))
    else:
        parts = torch.randperm(len(split), generator=generator).to(split.device).split(batch_size)
    for idx in parts:
        batch = split[idx]
        yield batch.images, batch.labels


def augment_batch(images: torch.Tensor, degrees: float, shift: float, background: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random rotation (+-degrees) and shift (+-shift pixels), a different one per image, on a
    normalized batch. Background fills what moves in. Training batches only."""
    # Drawn on CPU: the same on any device. non_blocking: a plain copy to the GPU would wait for
    # it to finish its queued work, a host sync on every training step.
    params = torch.rand(len(images), 3, generator=generator).to(images.device, non_blocking=True) * 2 - 1
    angle = params[:, 0] * (degrees * torch.pi / 180)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid works in [-1, 1] coordinates: one pixel is 2/28.
    tx, ty = params[:, 1] * shift * 2 / 28, params[:, 2] * shift * 2 / 28
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    moved = F.grid_sample(images - background, grid, align_corners=False, padding_mode="zeros")
    return moved + background


def shift_batch(images: torch.Tensor, shift: int, background: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Random whole-pixel shifts (x and y each in -shift..+shift, a different pair per image) of a normalized
    batch, by one gather from a padded copy: no resampling, so about a third of `augment_batch`'s cost."""
    if shift <= 0:
        return images
    n, c, h, w = images.shape
    device = images.device
    # Drawn on CPU: the same on any device (non_blocking: no host sync on a GPU).
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=generator).to(device, non_blocking=True)
    padded = F.pad(images, (shift, shift, shift, shift), value=background)  # N x C x (H+2s) x (W+2s)
    rows = torch.arange(h, device=device).view(1, h, 1) + offsets[:, 0].view(n, 1, 1)
    cols = torch.arange(w, device=device).view(1, 1, w) + offsets[:, 1].view(n, 1, 1)
    index = (rows * (w + 2 * shift) + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, -1).gather(2, index).view(n, c, h, w)
