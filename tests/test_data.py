"""Loading (IDX, course tar, PNG folder), checking, normalization, the validation split,
`limit`, batching and augmentation."""

from __future__ import annotations

import inspect
import io
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import encode_png

from conftest import N_TEST, N_TRAIN, N_VAL, write_mnist_root
from mnist_lib.course import load_course_tar, load_png_folder, write_course_tar
from mnist_lib.data import (IDX_FILES, NORMALIZATION, Split, augment_batch, batches, load_data, load_split,
                            resolve_data_dir, shift_batch, split_train_val)
from mnist_lib.errors import MnistLibError

TRAIN_IMAGES, TRAIN_LABELS = IDX_FILES[True]
TEST_IMAGES, TEST_LABELS = IDX_FILES[False]


def normalize(images: torch.Tensor, dataset: str) -> torch.Tensor:
    """uint8 N x 28 x 28 as the engine normalizes them (`Split.images`): float32 N x 1 x 28 x 28."""
    mean, std = NORMALIZATION[dataset]
    return Split(images.unsqueeze(1), torch.zeros(len(images), dtype=torch.long), mean, std).images


def png_bytes(array: np.ndarray) -> bytes:
    """PNG of a uint8 H x W (grayscale) or H x W x 3 (RGB) array."""
    tensor = torch.from_numpy(array)
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return encode_png(tensor.contiguous()).numpy().tobytes()


def make_tar(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def export_course_formats(idx_root, out_root):
    """Write out_root/{train,test}.tar (members under a folder) and out_root/{train,test}/ PNG folders."""
    out_root.mkdir(parents=True, exist_ok=True)
    for train, name in ((True, "train"), (False, "test")):
        images, labels = load_split("mnist", idx_root, "idx", train, download=False)
        write_course_tar(images, labels, out_root / f"{name}.tar", prefix=f"{name}/")
        with tarfile.open(out_root / f"{name}.tar") as tar:
            tar.extractall(out_root, filter="data")  # -> out_root/<name>/<id>_<label>.png


# --------------------------------------------------------------------------- loading

def test_idx_split_is_what_was_written(tiny_root, synthetic_arrays):
    for train, key in ((True, "train"), (False, "test")):
        images, labels = load_split("mnist", tiny_root, "idx", train, download=False)
        expected_images, expected_labels = synthetic_arrays[key]
        assert images.dtype == torch.uint8 and images.shape == (len(expected_labels), 28, 28)
        assert labels.dtype == torch.int64
        assert torch.equal(images, torch.from_numpy(expected_images))
        assert torch.equal(labels, torch.from_numpy(expected_labels).long())


@pytest.mark.slow
def test_idx_tar_and_folder_give_the_same_tensors(tmp_path, tiny_root):
    course = tmp_path / "course"
    export_course_formats(tiny_root, course)
    with tarfile.open(course / "train.tar") as tar:
        names = tar.getnames()
    assert len(names) == N_TRAIN and all(n.startswith("train/") for n in names)  # a folder inside the tar
    for train in (True, False):
        images, labels = load_split("mnist", tiny_root, "idx", train, download=False)
        for fmt in ("tar", "folder"):
            other_images, other_labels = load_split("mnist", course, fmt, train)
            assert torch.equal(other_images, images), fmt
            assert torch.equal(other_labels, labels), fmt
    idx = load_data("mnist", tiny_root, "idx", val_size=N_VAL, download=False)
    for fmt in ("tar", "folder"):
        other = load_data("mnist", course, fmt, val_size=N_VAL)
        for part in ("train", "val", "test"):
            assert torch.equal(getattr(other, part).images, getattr(idx, part).images)
            assert torch.equal(getattr(other, part).labels, getattr(idx, part).labels)


def test_course_tar_is_read_in_id_order(tmp_path):
    images = torch.stack([torch.full((28, 28), 10 * i, dtype=torch.uint8) for i in range(3)])
    members = {f"x/{i}_{label}.png": png_bytes(images[i].numpy()) for i, label in ((2, 7), (0, 1), (1, 4))}
    make_tar(tmp_path / "t.tar", members)
    loaded, labels = load_course_tar(tmp_path / "t.tar")
    assert torch.equal(loaded, images)
    assert labels.tolist() == [1, 4, 7]


def test_data_dir_comes_from_the_environment(monkeypatch, tmp_path, tiny_root):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tiny_root))
    assert resolve_data_dir() == tiny_root
    assert resolve_data_dir(tmp_path) == tmp_path
    assert len(load_data(val_size=N_VAL, download=False).test) == N_TEST
    monkeypatch.delenv("MNIST_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert str(resolve_data_dir()) == "data"


# --------------------------------------------------------------------------- normalization, split, limit

def test_normalization_uses_the_mnist_mean_and_std():
    assert NORMALIZATION["mnist"] == (0.1307, 0.3081)
    pixels = torch.tensor([0, 128, 255], dtype=torch.uint8).repeat(1, 28 * 28 // 3 + 1)[:, :784].reshape(1, 28, 28)
    out = normalize(pixels, "mnist")
    assert out.shape == (1, 1, 28, 28) and out.dtype == torch.float32
    expected = (pixels.double() / 255 - 0.1307) / 0.3081
    assert torch.allclose(out[:, 0].double(), expected, atol=1e-6)
    assert out.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-6)
    assert out.max().item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-6)


def test_load_data_normalizes_and_unnormalizes(tiny_root, synthetic_arrays):
    data = load_data("mnist", tiny_root, "idx", val_size=N_VAL, download=False)
    assert (data.mean, data.std) == (0.1307, 0.3081)
    test_pixels = torch.from_numpy(synthetic_arrays["test"][0]).float() / 255
    assert torch.allclose(data.test.images[:, 0], (test_pixels - 0.1307) / 0.3081, atol=1e-6)
    assert torch.allclose(data.unnormalize(data.test.images)[:, 0], test_pixels, atol=1e-6)


def test_real_mnist_mean_and_std_are_the_normalization(real_data_dir):
    raw = real_data_dir / "MNIST" / "raw" / TRAIN_IMAGES
    counts = np.bincount(np.fromfile(raw, dtype=np.uint8, offset=16), minlength=256)  # a histogram: no float copy
    assert counts.sum() == 60_000 * 28 * 28
    values = np.arange(256) / 255
    mean = (counts * values).sum() / counts.sum()
    std = np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum())
    assert (round(mean, 4), round(std, 4)) == NORMALIZATION["mnist"]


def test_validation_split_is_seeded_and_disjoint():
    train, val = split_train_val(1000, 100, seed=0)
    assert len(train) == 900 and len(val) == 100
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(1000))
    again_train, again_val = split_train_val(1000, 100, seed=0)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    assert not torch.equal(val, split_train_val(1000, 100, seed=1)[1])
    assert not torch.equal(val, torch.arange(100))  # random, not the first images
    with pytest.raises(MnistLibError, match="val_size"):
        split_train_val(100, 100)


def test_validation_split_default_is_5000():
    assert inspect.signature(load_data).parameters["val_size"].default == 5000


def test_real_mnist_default_split_sizes(real_data_dir):
    data = load_data("mnist", real_data_dir, "idx", download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (55_000, 5_000, 10_000)


def test_splits_partition_the_training_images(tiny_root, synthetic_arrays):
    data = load_data("mnist", tiny_root, "idx", val_size=N_VAL, download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (N_TRAIN - N_VAL, N_VAL, N_TEST)
    all_train = normalize(torch.from_numpy(synthetic_arrays["train"][0]), "mnist")
    rows = {tuple(x.flatten().tolist()[:200:7]) for x in all_train}
    seen = [tuple(x.flatten().tolist()[:200:7]) for x in torch.cat([data.train.images, data.val.images])]
    assert len(set(seen)) == len(seen) == N_TRAIN and set(seen) == rows


def test_limit_keeps_the_first_n(tiny_root):
    full = load_data("mnist", tiny_root, "idx", val_size=N_VAL, download=False)
    limited = load_data("mnist", tiny_root, "idx", val_size=N_VAL, limit=50, download=False)
    assert len(limited.train) == 50
    assert torch.equal(limited.train.images, full.train.images[:50])
    assert torch.equal(limited.train.labels, full.train.labels[:50])
    assert torch.equal(limited.val.images, full.val.images)  # validation and test are never cut
    assert torch.equal(limited.test.labels, full.test.labels)


def test_limit_larger_than_the_data(tiny_root):
    with pytest.raises(MnistLibError, match=r"limit 501 is larger than the 500 training images"):
        load_data("mnist", tiny_root, "idx", val_size=N_VAL, limit=N_TRAIN - N_VAL + 1, download=False)


# --------------------------------------------------------------------------- batches and augmentation

def test_batches_cover_the_split_once():
    split = Split(torch.arange(10, dtype=torch.float32).reshape(10, 1, 1, 1), torch.arange(10))
    plain = list(batches(split, 4))
    assert [len(y) for _, y in plain] == [4, 4, 2]
    assert torch.equal(torch.cat([y for _, y in plain]), torch.arange(10))
    shuffled = torch.cat([y for _, y in batches(split, 4, torch.Generator().manual_seed(0))])
    assert sorted(shuffled.tolist()) == list(range(10)) and shuffled.tolist() != list(range(10))
    again = torch.cat([y for _, y in batches(split, 4, torch.Generator().manual_seed(0))])
    assert torch.equal(shuffled, again)


def test_batches_reshuffle_on_every_pass_with_one_generator():
    """Training passes one generator to every epoch: each pass draws a new order, and the
    sequence of orders is the same for the same seed."""
    split = Split(torch.zeros(50, 1, 28, 28, dtype=torch.uint8), torch.arange(50))

    def orders(seed, passes=3):
        generator = torch.Generator().manual_seed(seed)
        return [torch.cat([y for _, y in batches(split, 8, generator)]) for _ in range(passes)]

    first, second, third = orders(0)
    for order in (first, second, third):
        assert sorted(order.tolist()) == list(range(50))
    assert not torch.equal(first, second) and not torch.equal(second, third) and not torch.equal(first, third)
    assert all(torch.equal(a, b) for a, b in zip(orders(0), (first, second, third)))


def test_augment_moves_images_and_keeps_the_background(tiny_root):
    data = load_data("mnist", tiny_root, "idx", val_size=N_VAL, download=False)
    x = data.train.images[:16]
    original = x.clone()
    background = -data.mean / data.std
    moved = augment_batch(x, 10.0, 2.0, background, torch.Generator().manual_seed(0))
    assert torch.equal(x, original)  # the input batch is not modified in place
    assert moved.shape == x.shape
    changed = (moved - x).abs().flatten(1).amax(1)
    assert (changed > 0.5).all()  # every image moved
    assert not torch.allclose(moved[0] - x[0], moved[1] - x[1])  # each its own way
    again = augment_batch(x, 10.0, 2.0, background, torch.Generator().manual_seed(0))
    assert torch.equal(moved, again)
    blank = torch.full((2, 1, 28, 28), background)
    assert torch.allclose(augment_batch(blank, 10.0, 2.0, background), blank, atol=1e-5)


def test_augment_with_no_rotation_or_shift_is_the_identity(tiny_root):
    data = load_data("mnist", tiny_root, "idx", val_size=N_VAL, download=False)
    x = data.train.images[:16]
    assert torch.allclose(augment_batch(x, 0.0, 0.0, -data.mean / data.std), x, atol=1e-5)


# --------------------------------------------------------------------------- bad IDX data

def test_splits_are_stored_as_uint8_and_batches_are_normalized(tiny_root, synthetic_arrays):
    """The splits keep uint8 pixels (a quarter of float32's memory); every batch comes out
    normalized, bit for bit what normalizing the whole split gives."""
    data = load_data("mnist", tiny_root, "idx", val_size=N_VAL, download=False)
    for split in (data.train, data.val, data.test):
        assert split.stored.dtype == torch.uint8 and split.stored.shape[1:] == (1, 28, 28)
        whole = split.images
        assert whole.dtype == torch.float32
        plain = torch.cat([x for x, _ in batches(split, 7)])
        assert torch.equal(plain, whole)
    test_pixels = torch.from_numpy(synthetic_arrays["test"][0])
    assert torch.equal(data.test.images, normalize(test_pixels, "mnist"))
    gen = torch.Generator().manual_seed(3)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(3))
    shuffled = torch.cat([x for x, _ in batches(data.train, 64, gen)])
    assert torch.equal(shuffled, data.train.images[order])
    assert torch.allclose(data.unnormalize(data.test.stored), data.unnormalize(data.test.images), atol=1e-6)
    assert torch.equal(data.train[:5].images, data.train.images[:5])


@pytest.mark.slow
def test_idx_loading_does_not_import_torchvision(tiny_root):
    """Reading checked IDX files needs no torchvision (its import costs ~170 MiB of memory)."""
    import subprocess
    import sys

    code = ("import sys; from mnist_lib.data import load_data; "
            f"load_data('mnist', {str(tiny_root)!r}, 'idx', val_size={N_VAL}, download=False); "
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_shift_moves_whole_pixels_and_keeps_the_background(tiny_root):
    data = load_data("mnist", tiny_root, "idx", val_size=N_VAL, download=False)
    x = data.train.images[:32]
    original = x.clone()
    background = -data.mean / data.std
    moved = shift_batch(x, 2, background, torch.Generator().manual_seed(0))
    assert torch.equal(x, original) and moved.shape == x.shape
    assert torch.equal(moved, shift_batch(x, 2, background, torch.Generator().manual_seed(0)))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=background)
    for i in range(len(x)):  # each image is one of the 25 whole-pixel shifts of itself
        crops = [padded[i, :, dy:dy + 28, dx:dx + 28] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(moved[i], c) for c in crops)
    assert not all(torch.equal(moved[i], x[i]) for i in range(len(x)))
    blank = torch.full((2, 1, 28, 28), background)
    assert torch.equal(shift_batch(blank, 2, background), blank)
    assert torch.equal(shift_batch(x, 0, background), x)


def test_missing_data_dir_says_how_to_get_the_data(tmp_path):
    with pytest.raises(MnistLibError, match="MNIST_DATA_DIR") as info:
        load_data("mnist", tmp_path / "nowhere", "idx", download=False)
    assert "MNIST/raw" in str(info.value) and "download" in str(info.value)


def test_empty_data_dir(tmp_path):
    with pytest.raises(MnistLibError, match="no mnist data in .*MNIST_DATA_DIR"):
        load_data("mnist", tmp_path, "idx", download=False)


def test_data_dir_with_only_the_training_files(raw_dir):
    (raw_dir / TEST_IMAGES).unlink()
    with pytest.raises(MnistLibError, match=f"{TEST_IMAGES}.*MNIST_DATA_DIR"):
        load_data("mnist", raw_dir.parents[1], "idx", val_size=N_VAL, download=False)


def test_truncated_idx(raw_dir):
    path = raw_dir / TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(MnistLibError, match=f"{TRAIN_IMAGES} is .* bytes but its header promises .*truncated"):
        load_data("mnist", raw_dir.parents[1], "idx", val_size=N_VAL, download=False)


def test_idx_shorter_than_its_header(raw_dir):
    (raw_dir / TEST_LABELS).write_bytes(b"\x00\x00\x08")
    with pytest.raises(MnistLibError, match=f"{TEST_LABELS} is truncated"):
        load_data("mnist", raw_dir.parents[1], "idx", val_size=N_VAL, download=False)


def test_wrong_magic(raw_dir):
    path = raw_dir / TRAIN_LABELS
    data = path.read_bytes()
    path.write_bytes(struct.pack(">I", 0x1F8B0808) + data[4:])  # e.g. a gzip file renamed
    with pytest.raises(MnistLibError, match=f"{TRAIN_LABELS} has magic number 0x1f8b0808, expected 0x00000801"):
        load_data("mnist", raw_dir.parents[1], "idx", val_size=N_VAL, download=False)


def test_image_and_label_counts_disagree(tmp_path, synthetic_arrays):
    images, labels = synthetic_arrays["train"]
    root = write_mnist_root(tmp_path, (images, labels[:-1]), synthetic_arrays["test"])
    with pytest.raises(MnistLibError, match=f"holds {N_TRAIN} images but .*{TRAIN_LABELS} holds {N_TRAIN - 1} labels"):
        load_data("mnist", root, "idx", val_size=N_VAL, download=False)


def test_images_not_28x28(tmp_path, synthetic_arrays):
    images, labels = synthetic_arrays["test"]
    root = write_mnist_root(tmp_path, synthetic_arrays["train"], (images[:, :27, :], labels))
    with pytest.raises(MnistLibError, match="27x28 images, expected 28x28"):
        load_data("mnist", root, "idx", val_size=N_VAL, download=False)


def test_label_outside_0_to_9(tmp_path, synthetic_arrays):
    images, labels = synthetic_arrays["train"]
    labels = labels.copy()
    labels[7] = 10
    root = write_mnist_root(tmp_path, (images, labels), synthetic_arrays["test"])
    with pytest.raises(MnistLibError, match=f"{TRAIN_LABELS}: label 10 at index 7 is outside 0-9"):
        load_data("mnist", root, "idx", val_size=N_VAL, download=False)


# --------------------------------------------------------------------------- bad course tars and folders

GOOD = png_bytes(np.zeros((28, 28), np.uint8))


@pytest.mark.parametrize("name, payload, message", [
    pytest.param("train/picture.png", GOOD, r"member 'train/picture.png' is not named \{ID\}_\{Label\}.png", id="name"),
    pytest.param("train/00001_3.jpg", GOOD, r"member 'train/00001_3.jpg' is not named", id="extension"),
    pytest.param("train/00001_12.png", GOOD, r"'train/00001_12.png' has label 12, outside 0-9", id="label"),
    pytest.param("train/00001_3.png", b"not a png at all", r"'train/00001_3.png' is not a readable PNG", id="not-png"),
    pytest.param("train/00001_3.png", png_bytes(np.zeros((28, 27), np.uint8)),
                 r"'train/00001_3.png' is 27x28 .*28x28 8-bit grayscale", id="27x28"),
    pytest.param("train/00001_3.png", png_bytes(np.zeros((32, 32), np.uint8)), r"'train/00001_3.png' is 32x32", id="32x32"),
    pytest.param("train/00001_3.png", png_bytes(np.zeros((28, 28, 3), np.uint8)),
                 r"'train/00001_3.png' is 28x28 in mode RGB; course images are 28x28 8-bit grayscale", id="rgb"),
])
def test_bad_course_tar_members(tmp_path, name, payload, message):
    make_tar(tmp_path / "train.tar", {"train/00000_1.png": GOOD, name: payload})
    with pytest.raises(MnistLibError, match=message) as info:
        load_course_tar(tmp_path / "train.tar")
    assert str(tmp_path / "train.tar") in str(info.value)


def test_sixteen_bit_png_is_refused(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.full((28, 28), 300, np.uint16)).save(buffer, format="PNG")
    make_tar(tmp_path / "train.tar", {"00000_1.png": GOOD, "00001_2.png": buffer.getvalue()})
    with pytest.raises(MnistLibError, match=r"'00001_2.png' is 28x28 in mode I;16"):
        load_course_tar(tmp_path / "train.tar")


def test_empty_tar(tmp_path):
    make_tar(tmp_path / "train.tar", {})
    with pytest.raises(MnistLibError, match=r"train.tar holds no \{ID\}_\{Label\}.png images"):
        load_course_tar(tmp_path / "train.tar")


@pytest.mark.parametrize("payload", [b"", b"this is a text file, not a tar\n" * 40], ids=["empty-file", "text"])
def test_file_that_is_not_a_tar(tmp_path, payload):
    (tmp_path / "train.tar").write_bytes(payload)
    with pytest.raises(MnistLibError, match="train.tar is not a readable tar archive"):
        load_course_tar(tmp_path / "train.tar")


def test_missing_tar(tmp_path):
    with pytest.raises(MnistLibError, match="test.tar does not exist.*export-tar"):
        load_split("mnist", tmp_path, "tar", train=False)


def test_bad_png_folder(tmp_path):
    with pytest.raises(MnistLibError, match="is not a folder"):
        load_png_folder(tmp_path / "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(MnistLibError, match="holds no"):
        load_png_folder(tmp_path / "train")
    (tmp_path / "train" / "00000_1.png").write_bytes(GOOD)
    (tmp_path / "train" / "00001_1.png").write_bytes(png_bytes(np.zeros((20, 20), np.uint8)))
    with pytest.raises(MnistLibError, match=r"'00001_1.png' is 20x20"):
        load_png_folder(tmp_path / "train")


def test_failed_download_leaves_no_empty_folders(tmp_path):
    """Offline (as here and in CI) torchvision's download fails; the folders it made must go."""
    from mnist_lib.data import load_data

    missing = tmp_path / "nowhere" / "deeper"
    with pytest.raises(MnistLibError, match="MNIST_DATA_DIR"):
        load_data("mnist", missing, download=True)
    assert list(tmp_path.iterdir()) == []
