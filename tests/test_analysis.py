"""mnist_lib.analysis on hand-made tensors whose answers are known: translations (an ink-counting
model is shift-invariant, a one-pixel model is not), a run's record (what metrics.json keeps
instead of model.pt) and what the figures show."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
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


# --------------------------------------------------------------------------- a run's record

def _with_running_statistics(model: nn.Module) -> nn.Module:
    """BatchNorm statistics that are not the identity, so a record without them would differ."""
    bn = getattr(model, "bn1", None)
    if isinstance(bn, nn.BatchNorm2d):
        generator = torch.Generator().manual_seed(1)
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
        bn.weight.data.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
        bn.bias.data.copy_(torch.randn(bn.num_features, generator=generator))
    return model


@pytest.mark.parametrize("name", ["lenet5", "lenet5_regularized"])
def test_conv1_maps_from_the_record_are_the_models_own(name):
    """The record (stored in metrics.json) is enough: its feature maps are what the model's
    conv1 -> bn1 (eval) -> ReLU computes."""
    import json

    torch.manual_seed(0)
    model = _with_running_statistics(build_model(name)).eval()
    record = json.loads(json.dumps(analysis.conv1_record(model)))  # as metrics.json keeps it
    assert (record["bn"] is not None) == (name == "lenet5_regularized")
    image = ink_split().images[5]
    maps = analysis.conv1_maps(record, image)
    with torch.no_grad():
        expected = torch.relu(model.bn1(model.conv1(image[None])))[0]
    assert maps.shape == (6, 28, 28) and (maps >= 0).all()
    assert torch.allclose(maps, expected, atol=1e-5)
    assert analysis.conv1_record(build_model("custom_mlp")) is None  # no conv1


@pytest.mark.parametrize("name", ["lenet5", "lenet5_regularized"])
def test_conv1_figure_shows_six_filters_their_maps_and_the_digit(tmp_path, name):
    torch.manual_seed(0)
    model = _with_running_statistics(build_model(name)).eval()
    record = analysis.conv1_record(model)
    image = ink_split().images[5]
    path = tmp_path / "conv1.png"
    fig = analysis.conv1_figure(record, image, path, title="LeNet-5, seed 0: conv1 filters and feature maps", label=5)
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5_000
    grid, bars = fig.axes[:14], fig.axes[14:]
    assert len(bars) == 2  # one colour scale for the filters, one for the maps
    top, bottom = grid[:7], grid[7:]
    assert [ax.get_title() for ax in top[1:]] == [f"filter {k}" for k in range(1, 7)]
    assert [ax.get_title() for ax in bottom[1:]] == [f"map {k}" for k in range(1, 7)]
    assert bottom[0].get_title() == "input (label 5)"
    weights = torch.tensor(record["weight"])[:, 0]
    maps = analysis.conv1_maps(record, image)
    for k in range(6):
        assert np.allclose(top[k + 1].images[0].get_array(), weights[k].numpy())
        assert np.allclose(bottom[k + 1].images[0].get_array(), maps[k].numpy())
    after = "after BN + ReLU" if name == "lenet5_regularized" else "after ReLU"
    assert [bar.get_ylabel() for bar in bars] == ["weight", after]
    assert fig._suptitle.get_text() == "LeNet-5, seed 0: conv1 filters and feature maps"


def test_run_record_keeps_the_errors_and_the_shift_accuracies(tmp_path):
    import json
    from types import SimpleNamespace

    from mnist_lib.train import predict

    split = pixel_split()
    split.labels[[3, 8]] = 1 - split.labels[[3, 8]]  # two images the pixel model gets wrong
    model = PixelModel()
    record = json.loads(json.dumps(analysis.run_record(model, SimpleNamespace(test=split), shifts=True)))
    predicted = predict(model, split)
    assert record["test_wrong"] == [[3, int(predicted[3])], [8, int(predicted[8])]]
    assert record["conv1"] is None  # the pixel model has no conv1
    assert set(record["shift_acc"]) == {"0", "1", "2", "3", "4"}
    assert record["shift_acc"]["0"] == evaluate(model, split)[1] == 90.0
    metrics = {"analysis": record}
    assert torch.equal(analysis.recorded_predictions(metrics, split.labels), predicted)
    assert "shift_acc" not in analysis.run_record(model, SimpleNamespace(test=split))  # shifts: off by default
    lenet = build_model("lenet5").eval()
    assert analysis.run_record(lenet, SimpleNamespace(test=split))["conv1"] == analysis.conv1_record(lenet)


def test_recorded_shift_table_averages_the_runs():
    runs = [{"analysis": {"shift_acc": {"0": 99.0, "2": 90.0}}}, {"analysis": {"shift_acc": {"0": 98.0, "2": 80.0}}}]
    table = analysis.recorded_shift_table({"LeNet-5": runs, "CustomMLP": [{"analysis": {"test_wrong": []}}]})
    assert list(table.index) == ["LeNet-5"]  # a name without recorded shifts has no row
    assert list(table.columns) == [0, 2]
    assert table.loc["LeNet-5", 0] == pytest.approx(98.5) and table.loc["LeNet-5", 2] == pytest.approx(85.0)


def test_shift_figure_has_one_line_per_model(tmp_path):
    runs = {name: [{"analysis": {"shift_acc": {str(s): acc for s, acc in
                                                analysis.shift_accuracy(model, pixel_split(), (0, 1, 2)).items()}}}]
            for name, model in (("LeNet-5", InkModel()), ("CustomMLP", PixelModel()))}
    table = analysis.recorded_shift_table(runs)
    path = tmp_path / "sub" / "shift.png"
    fig = analysis.shift_figure(table, path, title="LeNet-5 and CustomMLP under translation")
    assert path.read_bytes()[:8] == PNG
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 2
    for line, name in zip(lines, ["LeNet-5", "CustomMLP"]):
        assert list(line.get_xdata()) == [0, 1, 2]
        assert list(line.get_ydata()) == list(table.loc[name].values)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["LeNet-5", "CustomMLP"]
    assert [int(t) for t in ax.get_xticks()] == [0, 1, 2]
    assert ax.get_xlabel().startswith("shift of the test images (pixels") and ax.get_ylabel() == "test accuracy (%)"
    assert ax.get_title() == "LeNet-5 and CustomMLP under translation"
