"""mnist_lib.plots: every figure is written as a non-empty PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mnist_lib import plots  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def assert_png(path):
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5_000, (path, len(data))


def history(epochs: int, offset: float = 0.0) -> list[dict]:
    return [{"epoch": e, "train_loss": 1 / e + offset, "val_loss": 1.1 / e + offset, "test_loss": 1.2 / e + offset,
             "train_acc": 90 + e + offset, "val_acc": 89 + e, "test_acc": 88 + e - offset} for e in range(1, epochs + 1)]


def test_curves_and_full_result_figures(tmp_path):
    runs = [history(4), history(4, 0.3), history(3)]  # unequal lengths: the common epochs are drawn
    plots.curves_figure(runs, tmp_path / "curves.png", title="LeNet-5", selected_epochs=[4, 3, 3])
    assert_png(tmp_path / "curves.png")
    plots.curves_figure([history(1)], tmp_path / "one.png")  # one seed, one epoch
    assert_png(tmp_path / "one.png")
    plots.full_result_figure({"LeNet-5": runs, "CustomMLP": [history(4, 1.0)]}, tmp_path / "full.png")
    assert_png(tmp_path / "full.png")


def test_curves_skip_a_missing_validation_split(tmp_path):
    runs = [[{**e, "val_loss": None, "val_acc": None} for e in history(2)]]
    plots.curves_figure(runs, tmp_path / "noval.png")
    assert_png(tmp_path / "noval.png")


def test_confusion_matrix_counts():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])
    matrix = plots.confusion_matrix(labels, predictions, classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert matrix.sum() == len(labels)


def test_confusion_and_gallery_figures(tmp_path):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 10
    predictions = labels.clone()
    predictions[::4] = (predictions[::4] + 1) % 10
    images = torch.rand(60, 1, 28, 28, generator=generator)
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    plots.confusion_figure(plots.confusion_matrix(labels, predictions), names, tmp_path / "confusion.png")
    assert_png(tmp_path / "confusion.png")
    plots.misclassified_figure(images, labels, predictions, names, tmp_path / "wrong.png", count=12)
    assert_png(tmp_path / "wrong.png")
    plots.misclassified_figure(images, labels, labels, [str(i) for i in range(10)], tmp_path / "none.png")
    assert (tmp_path / "none.png").stat().st_size > 0  # no errors: a figure that says so


def test_mean_std_figure(tmp_path):
    rows = [{"label": "none", "values": [98.9, 99.0, 99.1], "recipe": "tuned"},
            {"label": "none", "values": [98.5, 98.7, 98.6], "recipe": "course"},
            {"label": "BatchNorm only", "values": [99.2], "recipe": "tuned"}]
    plots.mean_std_figure(rows, tmp_path / "ablation.png")
    assert_png(tmp_path / "ablation.png")


def test_save_refuses_an_unwritable_folder(tmp_path):
    from mnist_lib.errors import MnistLibError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    fig, _ = plt.subplots()
    with pytest.raises(MnistLibError, match="figure folder"):
        plots.save(fig, blocker / "x.png")


def test_mean_band_uses_common_epochs():
    epochs, mean, low, high = plots._mean_band([[1.0, 2.0, 3.0], [3.0, 4.0]])
    assert epochs.tolist() == [1, 2]
    assert np.allclose(mean, [2.0, 3.0]) and np.allclose(low, [1.0, 2.0]) and np.allclose(high, [3.0, 4.0])
