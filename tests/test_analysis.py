"""mnist_lib.analysis on hand-made tensors whose answers are known: the confusion ranking,
translations (an ink-counting model is shift-invariant, a one-pixel model is not) and the
figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from mnist_lib import analysis  # noqa: E402
from mnist_lib.data import Split  # noqa: E402
from mnist_lib.models import build_model  # noqa: E402
from mnist_lib.train import evaluate  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
MEAN, STD = 0.1307, 0.3081


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def crafted():
    """Class 0: 10 images, 3 taken for 1, 1 for 2; class 1: 10, 2 taken for 7; class 2: 5, 4 for 0."""
    labels = torch.tensor([0] * 10 + [1] * 10 + [2] * 5)
    preds = labels.clone()
    preds[0:3] = 1
    preds[3] = 2
    preds[10:12] = 7
    preds[20:24] = 0
    return labels, preds


def test_top_confusions_ranks_pairs_with_counts_and_shares():
    labels, preds = crafted()
    rows = analysis.top_confusions(labels, preds, k=3)
    assert [(r["true"], r["predicted"], r["count"]) for r in rows] == [("2", "0", 4), ("0", "1", 3), ("1", "7", 2)]
    assert [r["share (%)"] for r in rows] == pytest.approx([80.0, 30.0, 20.0])
    # fewer distinct errors than k: all four, the last one 0 -> 2; class names are used
    names = [f"c{i}" for i in range(10)]
    rows = analysis.top_confusions(labels.numpy(), preds.numpy(), k=10, class_names=names)
    assert len(rows) == 4 and (rows[-1]["true"], rows[-1]["predicted"], rows[-1]["count"]) == ("c0", "c2", 1)
    assert analysis.top_confusions(labels, labels) == []


def test_confusions_over_seeds_averages_counts_per_seed():
    labels, preds = crafted()
    other = labels.clone()
    other[20:22] = 0  # seed 2: class 2 taken for 0 twice, nothing else
    rows = analysis.confusions_over_seeds(labels, {0: preds, 1: other}, k=2)
    assert (rows[0]["true"], rows[0]["predicted"], rows[0]["count"], rows[0]["per seed"]) == ("2", "0", 3.0, [4, 2])
    assert rows[0]["share (%)"] == pytest.approx(60.0)
    assert (rows[1]["true"], rows[1]["predicted"], rows[1]["count"], rows[1]["per seed"]) == ("0", "1", 1.5, [3, 0])
    single = analysis.confusions_over_seeds(labels, [preds], k=3)
    assert [r["count"] for r in single] == [r["count"] for r in analysis.top_confusions(labels, preds, k=3)]


def test_shift_images_moves_content_and_fills_without_wraparound():
    image = torch.zeros(1, 1, 5, 5, dtype=torch.uint8)
    image[0, 0, 2, 4] = 9  # at the right edge
    image[0, 0, 0, 0] = 7
    right = analysis.shift_images(image, 0, 2, fill=1)
    assert right[0, 0, 0, 2] == 7 and (right[0, 0, :, :2] == 1).all() and int((right == 9).sum()) == 0
    down_left = analysis.shift_images(image, 1, -1)
    assert down_left[0, 0, 3, 3] == 9 and int((down_left == 7).sum()) == 0
    assert torch.equal(analysis.shift_images(image, 0, 0), image)
    assert (analysis.shift_images(image, 0, 5, fill=3) == 3).all()


class InkModel(nn.Module):
    """Predicts the class from the total ink (sum of [0, 1] pixels): translation-invariant as
    long as nothing leaves the frame."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        ink = ((x * STD + MEAN) * self.scale).sum((1, 2, 3))
        return -(ink[:, None] - torch.arange(1, 11, dtype=x.dtype)).abs()  # class c: c + 1 full pixels


class PixelModel(nn.Module):
    """Class 1 when pixel (14, 14) is bright, else class 0."""

    def __init__(self):
        super().__init__()
        self.threshold = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        bright = x[:, 0, 14, 14] - self.threshold
        return torch.stack([-bright, bright], 1)


def ink_split() -> Split:
    """Class c: c + 1 white pixels in a row near the centre (within reach of a 4-pixel shift)."""
    stored = torch.zeros(40, 1, 28, 28, dtype=torch.uint8)
    labels = torch.arange(40) % 10
    for i, c in enumerate(labels.tolist()):
        stored[i, 0, 9 + i % 10, 9:10 + c] = 255
    return Split(stored, labels, MEAN, STD)


def pixel_split() -> Split:
    stored = torch.zeros(20, 1, 28, 28, dtype=torch.uint8)
    labels = torch.arange(20) % 2
    stored[labels == 1, 0, 14, 14] = 255
    return Split(stored, labels, MEAN, STD)


def test_shift_accuracy_invariant_model_stays_constant_position_model_drops():
    ink = analysis.shift_accuracy(InkModel(), ink_split(), shifts=(0, 1, 2, 4), batch_size=7)
    assert ink == {0: 100.0, 1: 100.0, 2: 100.0, 4: 100.0}
    pixel = analysis.shift_accuracy(PixelModel(), pixel_split(), shifts=(0, 1, 3))
    assert pixel == {0: 100.0, 1: 50.0, 3: 50.0}  # shifted, the bright pixel is never at (14, 14)


def test_shift_accuracy_zero_is_evaluate_and_float_storage_uses_its_background():
    torch.manual_seed(0)
    model = build_model("lenet5").eval()
    stored = torch.randint(0, 256, (50, 1, 28, 28), dtype=torch.uint8)
    split = Split(stored, torch.randint(0, 10, (50,)), MEAN, STD)
    assert analysis.shift_accuracy(model, split, shifts=(0,))[0] == evaluate(model, split)[1]
    # the same images stored already normalized: the fill is their minimum, the 0 pixel
    floats = Split(split.images, split.labels)
    expected = analysis.shift_accuracy(model, split, (0, 2))
    assert analysis.shift_accuracy(model, floats, (0, 2)) == pytest.approx(expected)


def test_shift_table_rows_columns_and_mean_over_seeds():
    table = analysis.shift_table({"ink": [InkModel(), InkModel()], "pixel": PixelModel()}, pixel_split(), (0, 2))
    assert list(table.index) == ["ink", "pixel"] and list(table.columns) == [0, 2]
    assert table.loc["pixel", 0] == 100.0 and table.loc["pixel", 2] == 50.0
    assert table.loc["ink", 0] == table.loc["ink", 2]  # constant under shifts


@pytest.mark.parametrize("name", ["lenet5", "lenet5_regularized"])
def test_conv1_figure_writes_png(tmp_path, name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    image = ink_split().images[5]
    maps = analysis.conv1_maps(model, image)
    assert maps.shape == (6, 28, 28) and (maps >= 0).all()
    path = tmp_path / "conv1.png"
    analysis.conv1_figure(model, image, path, label=5)
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5_000


def test_shift_figure_writes_png(tmp_path):
    table = analysis.shift_table({"ink": InkModel(), "pixel": PixelModel()}, pixel_split(), (0, 1, 2))
    path = tmp_path / "sub" / "shift.png"
    analysis.shift_figure(table, path)
    assert path.read_bytes()[:8] == PNG
