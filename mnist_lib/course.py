"""The course's data format, 28x28 grey-scale PNGs named `{ID}_{Label}.png` in a tar (`train.tar` /
`test.tar`) or a folder: reading, writing, and the course template's per-sample `Dataset` (one PIL
decode per image per epoch), which the benchmark times against the engine."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mnist_lib.data import NORMALIZATION
from mnist_lib.errors import MnistLibError

COURSE_NAME = re.compile(r"^(\d+)_(\d+)\.png$")


def _decode_course_png(name: str, payload: bytes, source: str) -> tuple[int, int, torch.Tensor]:
    match = COURSE_NAME.match(os.path.basename(name))
    if not match:
        raise MnistLibError(f"{source}: member {name!r} is not named {{ID}}_{{Label}}.png")
    image_id, label = int(match.group(1)), int(match.group(2))
    if label > 9:
        raise MnistLibError(f"{source}: {name!r} has label {label}, outside 0-9")
    # Pillow, as the course reads them (torchvision.io's PNG codec is deprecated since 0.29).
    try:
        with Image.open(io.BytesIO(payload)) as png:
            png.load()
            mode, size = png.mode, png.size
            pixels = np.array(png) if mode == "L" and size == (28, 28) else None
    except (OSError, ValueError, SyntaxError):
        raise MnistLibError(f"{source}: {name!r} is not a readable PNG") from None
    if pixels is None:
        raise MnistLibError(f"{source}: {name!r} is {size[0]}x{size[1]} in mode {mode}; "
                            f"course images are 28x28 8-bit grayscale (mode L)")
    return image_id, label, torch.from_numpy(pixels)


def _stack_by_id(items: list[tuple[int, int, torch.Tensor]], source: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not items:
        raise MnistLibError(f"{source} holds no {{ID}}_{{Label}}.png images")
    items.sort(key=lambda item: item[0])  # ID order, so a tar and the IDX files it came from agree
    return torch.stack([image for _, _, image in items]), torch.tensor([label for _, label, _ in items])


def load_course_tar(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """A course tar (`train.tar` / `test.tar`) of PNGs named `{ID}_{Label}.png` in any folder."""
    path = Path(path)
    if not path.is_file():
        raise MnistLibError(f"{path} does not exist: put the course's train.tar/test.tar there, "
                            f"or write them with `python -m mnist_lib export-tar`")
    try:
        with tarfile.open(path) as tar:
            items = [_decode_course_png(m.name, tar.extractfile(m).read(), str(path))
                     for m in tar.getmembers() if m.isfile()]
    except (tarfile.TarError, EOFError, OSError) as exc:
        detail = str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__  # 3.11+: one line per method
        raise MnistLibError(f"{path} is not a readable tar archive ({detail})") from None
    return _stack_by_id(items, str(path))


def load_png_folder(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """A folder (searched recursively) of PNGs named `{ID}_{Label}.png`."""
    path = Path(path)
    if not path.is_dir():
        raise MnistLibError(f"{path} is not a folder of {{ID}}_{{Label}}.png images")
    items = [_decode_course_png(str(p.relative_to(path)), p.read_bytes(), str(path))
             for p in sorted(path.rglob("*")) if p.is_file()]
    return _stack_by_id(items, str(path))


def write_course_tar(images: torch.Tensor, labels: torch.Tensor, path: str | os.PathLike, prefix: str = "") -> None:
    """Write images as a course tar, member `{prefix}{index}_{label}.png`; atomic."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w") as tar:
        for i, (image, label) in enumerate(zip(images, labels)):
            buffer = io.BytesIO()
            Image.fromarray(image.reshape(28, 28).to(torch.uint8).numpy(), mode="L").save(buffer, format="PNG")
            data = buffer.getvalue()
            info = tarfile.TarInfo(f"{prefix}{i:05d}_{int(label)}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)


class CoursePngDataset(Dataset):
    """A folder of course-format PNGs (`{ID}_{Label}.png`, searched recursively), decoded with PIL
    on every access: the per-sample pipeline of the course template."""

    def __init__(self, root: str | os.PathLike, transform=None):
        self.samples, self.transform = [], transform
        for path in sorted(Path(root).rglob("*.png")):
            match = COURSE_NAME.match(path.name)
            if not match:
                raise MnistLibError(f"{path} is not named {{ID}}_{{Label}}.png")
            self.samples.append((path, int(match.group(2))))
        if not self.samples:
            raise MnistLibError(f"{root} holds no {{ID}}_{{Label}}.png images")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            image = image.convert("L")
        return (image if self.transform is None else self.transform(image)), label


def course_transform(dataset: str = "mnist"):
    """ToTensor + Normalize, as the course template transforms each PIL image."""
    from torchvision import transforms

    mean, std = NORMALIZATION[dataset]
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])


def write_course_pngs(images: torch.Tensor, labels: torch.Tensor, folder: Path) -> Path:
    """Write the images as the course does (a tar of `{ID}_{Label}.png`), extract it, return the folder."""
    tar_path = folder / "train.tar"
    write_course_tar(images, labels, tar_path, prefix="train/")
    with tarfile.open(tar_path) as tar:
        # the "data" filter refuses unsafe members (Python >= 3.10.12 has it)
        tar.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    tar_path.unlink()
    return folder / "train"
