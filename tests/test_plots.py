"""mnist_lib.plots: each figure shows what it says (panels, one line per split, model or seed,
axis labels, titles in display names), read from the returned matplotlib Figure; and is written
as a PNG when given a path."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402

from mnist_lib import plots  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
CODE_NAMES = ("lenet5", "custom_mlp", "lenet5_regularized")  # never shown: figures use display names


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def assert_png(path):
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5_000, (path, len(data))


def data_lines(ax):
    """The plotted series of an axes (lines with markers), not reference lines such as axvline."""
    return [line for line in ax.get_lines() if line.get_marker() not in (None, "None", "", " ")]


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None, "no legend"
    return [t.get_text() for t in legend.get_texts()]


def all_text(fig) -> str:
    """Every piece of text on the figure: titles, labels, tick labels, annotations, legends."""
    return " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def history(epochs: int, offset: float = 0.0) -> list[dict]:
    return [{"epoch": e, "train_loss": 1 / e + offset, "val_loss": 1.1 / e + offset, "test_loss": 1.2 / e + offset,
             "train_acc": 90 + e + offset, "val_acc": 89 + e, "test_acc": 88 + e - offset} for e in range(1, epochs + 1)]


# --------------------------------------------------------------------------- training curves

def test_curves_figure_shows_loss_and_accuracy_per_split_over_the_common_epochs(tmp_path):
    runs = [history(4), history(4, 0.3), history(3)]  # unequal lengths: the common epochs are drawn
    fig = plots.curves_figure(runs, tmp_path / "curves.png", title="LeNet-5 on MNIST", selected_epochs=[4, 3, 3])
    assert_png(tmp_path / "curves.png")
    loss, acc = fig.axes
    assert (loss.get_title(), acc.get_title()) == ("loss", "accuracy")
    assert loss.get_ylabel() == "cross-entropy loss" and acc.get_ylabel() == "accuracy (%)"
    assert loss.get_xlabel() == acc.get_xlabel() == "epoch"
    for ax, metric in ((loss, "loss"), (acc, "acc")):
        lines = data_lines(ax)
        assert len(lines) == 3  # train, validation, test: the mean over the three seeds
        for line, split in zip(lines, ("train", "val", "test")):
            assert list(line.get_xdata()) == [1, 2, 3]
            expected = np.mean([[e[f"{split}_{metric}"] for e in run[:3]] for run in runs], axis=0)
            assert np.allclose(line.get_ydata(), expected), (metric, split)
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 3  # a min-max band per split
        kept = sorted({round(line.get_xdata()[0]) for line in ax.get_lines() if line not in lines})
        assert kept == [3, 4]  # the kept epochs, marked once each
    assert legend_texts(acc) == ["train", "validation", "test"]
    suptitle = fig._suptitle.get_text()
    assert "LeNet-5 on MNIST" in suptitle and "mean of 3 seeds" in suptitle
    assert not any(name in all_text(fig) for name in CODE_NAMES)


def test_curves_figure_of_one_seed_and_one_epoch(tmp_path):
    fig = plots.curves_figure([history(1)], tmp_path / "one.png")
    assert_png(tmp_path / "one.png")
    for ax in fig.axes:
        assert len(data_lines(ax)) == 3 and not ax.collections  # one seed: no band
        assert all(list(line.get_xdata()) == [1] for line in data_lines(ax))
    assert "one seed" in fig._suptitle.get_text()


def test_curves_skip_a_missing_validation_split(tmp_path):
    runs = [[{**e, "val_loss": None, "val_acc": None} for e in history(2)]]
    fig = plots.curves_figure(runs, tmp_path / "noval.png")
    assert_png(tmp_path / "noval.png")
    for ax in fig.axes:
        assert len(data_lines(ax)) == 2
    assert legend_texts(fig.axes[1]) == ["train", "test"]


def test_full_result_figure_has_one_panel_per_model_with_a_line_per_split(tmp_path):
    runs = [history(4), history(4, 0.3), history(3)]
    fig = plots.full_result_figure({"LeNet-5": runs, "CustomMLP": [history(5, 1.0)]}, tmp_path / "full.png",
                                   title="MNIST: the writeup's models")
    assert_png(tmp_path / "full.png")
    lenet, mlp = fig.axes  # one panel per model, titled with its display name
    assert (lenet.get_title(), mlp.get_title()) == ("LeNet-5", "CustomMLP")
    assert lenet.get_ylabel() == "accuracy (%)" and lenet.get_xlabel() == mlp.get_xlabel() == "epoch"
    for ax, model_runs, epochs in ((lenet, runs, [1, 2, 3]), (mlp, [history(5, 1.0)], [1, 2, 3, 4, 5])):
        lines = ax.get_lines()
        assert len(lines) == 3  # train, validation, test: the mean over the model's seeds
        for line, key in zip(lines, ("train_acc", "val_acc", "test_acc")):
            assert list(line.get_xdata()) == epochs
            expected = np.mean([[e[key] for e in r[:len(epochs)]] for r in model_runs], axis=0)
            assert np.allclose(line.get_ydata(), expected), key
    assert len(lenet.collections) == 3 and not mlp.collections  # min-max bands where there are several seeds
    assert legend_texts(mlp) == ["train", "validation", "test"]
    assert fig._suptitle.get_text() == "MNIST: the writeup's models"
    assert not any(name in all_text(fig) for name in CODE_NAMES)


def test_lr_sweep_figure_has_one_line_per_variant_and_a_dot_per_seed(tmp_path):
    rows = {"none": {0.01: [98.9, 99.0], 0.1: [98.5, 11.35], 0.3: [None, None]},  # 11.35: failed, out of the mean
            "BatchNorm": {0.01: [99.0, 99.1], 0.1: [99.2, 99.1], 0.3: [98.8, 98.9]}}
    fig = plots.lr_sweep_figure(rows, tmp_path / "lr.png", title="LeNet-5 at constant learning rates")
    assert_png(tmp_path / "lr.png")
    (ax,) = fig.axes
    none, batchnorm = ax.get_lines()
    assert list(none.get_xdata()) == [0.01, 0.1, 0.3] and list(batchnorm.get_xdata()) == [0.01, 0.1, 0.3]
    assert np.allclose(batchnorm.get_ydata(), [99.05, 99.15, 98.85])
    assert np.allclose(none.get_ydata()[:2], [98.95, 98.5]) and np.isnan(none.get_ydata()[2])  # no run learned
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in dots) == 12  # every seed, a failed one at the bottom
    assert min(y for c in dots for _, y in c.get_offsets()) == 0
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["0.01", "0.1", "0.3"]
    assert ax.get_xlabel().startswith("constant learning rate") and ax.get_ylabel() == "test accuracy (%)"
    assert legend_texts(ax) == ["none", "BatchNorm"] and ax.get_title() == "LeNet-5 at constant learning rates"


# --------------------------------------------------------------------------- errors

def test_confusion_matrix_counts():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])
    matrix = plots.confusion_matrix(labels, predictions, classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert matrix.sum() == len(labels)


NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def gallery_case():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 10
    predictions = labels.clone()
    predictions[::4] = (predictions[::4] + 1) % 10  # 15 errors
    images = torch.rand(60, 1, 28, 28, generator=generator)
    return images, labels, predictions


def test_confusion_figure_annotates_every_cell_and_names_the_classes(tmp_path):
    _, labels, predictions = gallery_case()
    matrix = plots.confusion_matrix(labels, predictions)
    fig = plots.confusion_figure(matrix, NAMES, tmp_path / "confusion.png", title="LeNet-5: test confusion matrix")
    assert_png(tmp_path / "confusion.png")
    ax = fig.axes[0]  # the heatmap (the other axes is its colour bar)
    assert len(fig.axes) == 2
    assert ax.get_title() == "LeNet-5: test confusion matrix"
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel().startswith("true class")
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    rows = [t.get_text() for t in ax.get_yticklabels()]
    per_class = 100 * np.diag(matrix) / matrix.sum(1)
    assert rows == [f"{name} ({acc:.1f}%)" for name, acc in zip(NAMES, per_class)]
    counts = [int(t.get_text()) for t in ax.texts]  # the errors: the diagonal is on the row labels instead
    assert len(counts) == 90 and sum(counts) == int((predictions != labels).sum()) == 15
    assert fig.axes[1].get_ylabel() == "errors (off-diagonal)"


def test_misclassified_figure_captions_each_shown_error(tmp_path):
    images, labels, predictions = gallery_case()
    fig = plots.misclassified_figure(images, labels, predictions, NAMES, tmp_path / "wrong.png", count=12)
    assert_png(tmp_path / "wrong.png")
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and len(ax.images) == 1  # one grid image
    wrong = (predictions != labels).nonzero().flatten()[:12].tolist()
    short = [c if len(c) <= 8 else c[:7] + "." for c in NAMES]
    assert [t.get_text() for t in ax.texts] == [f"{short[int(labels[i])]}→{short[int(predictions[i])]}" for i in wrong]
    assert ax.get_title() == "misclassified test images (first 12 of 15; true→predicted)"
    titled = plots.misclassified_figure(images, labels, predictions, NAMES, title="LeNet-5, seed 0: misclassified")
    assert titled.axes[0].get_title() == "LeNet-5, seed 0: misclassified"


def test_misclassified_figure_without_errors_says_so(tmp_path):
    images, labels, _ = gallery_case()
    fig = plots.misclassified_figure(images, labels, labels, [str(i) for i in range(10)], tmp_path / "none.png")
    assert (tmp_path / "none.png").read_bytes()[:8] == PNG
    assert [t.get_text() for t in fig.axes[0].texts] == ["no misclassified images"]
    assert not fig.axes[0].images


# --------------------------------------------------------------------------- comparisons

def test_mean_std_figure_one_row_per_label_one_colour_per_group(tmp_path):
    rows = [{"label": "none", "values": [98.9, 99.0, 99.1], "recipe": "tuned"},
            {"label": "none", "values": [98.5, 98.7, 98.6], "recipe": "course"},
            {"label": "BatchNorm", "values": [99.2], "recipe": "tuned"}]
    fig = plots.mean_std_figure(rows, tmp_path / "ablation.png", title="LeNet-5: regularization ablation")
    assert_png(tmp_path / "ablation.png")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["none", "BatchNorm"]
    assert ax.get_xlabel() == "test accuracy (%)" and ax.get_title() == "LeNet-5: regularization ablation"
    assert legend_texts(ax) == ["tuned", "course"]  # one colour per recipe
    means = sorted(float(t.get_text()) for t in ax.texts)  # each row's mean, written beside its marker
    assert means == pytest.approx(sorted([99.0, 98.6, 99.2]), abs=0.006)
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in dots) == 7  # every seed as a dot


def test_mean_std_figure_keeps_a_failed_seed_off_the_scale_and_says_so():
    rows = [{"label": "none", "values": [11.35, 99.0, 99.1], "recipe": "tuned"},
            {"label": "Dropout", "values": [98.9, 99.0, 99.05], "recipe": "tuned"}]
    fig = plots.mean_std_figure(rows)
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    assert low > 90 and high <= 100.5  # scaled to the runs that learned
    assert any(f"a seed at {11.35:.1f}% (did not learn)" in t.get_text() for t in ax.texts)


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


def test_full_result_figure_scales_to_the_curves_after_the_first_tenth_of_the_epochs():
    """An MLP's first epochs (train accuracy 60, 80) must not squash the last tenths of a point into a line."""
    accs = [60.0, 80.0, *np.linspace(97.0, 99.0, 18)]
    runs = [[{"epoch": e + 1, "train_acc": a, "val_acc": a + 0.2, "test_acc": a + 0.3} for e, a in enumerate(accs)]]
    ax = plots.full_result_figure({"CustomMLP": runs}).axes[0]
    low, high = ax.get_ylim()
    assert 96 < low < 97 and high > 99.3
