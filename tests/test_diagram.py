"""mnist_lib.diagram: the architecture diagram's shapes and parameter counts come from the
models themselves; the figure shows every stage (an arrow, the shape it makes, its parameters),
is titled with the model's display name and is written as a PNG without changing the model."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from mnist_lib import diagram  # noqa: E402
from mnist_lib.models import build_model, count_parameters  # noqa: E402
from test_plots import assert_png  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_trace_stages_lenet5_shapes_and_parameters():
    model = build_model("lenet5_regularized")
    input_dims, stages = diagram.trace_stages(model)
    assert input_dims == (1, 28, 28)
    assert [s.shape for s in stages] == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,), (120,), (84,), (10,)]
    assert sum(s.params for s in stages) == count_parameters(model) == 61_750
    assert stages[0].ops[:3] == ["conv1: conv 5×5, pad 2\n6 maps", "BatchNorm", "ReLU"]
    assert any("Dropout(0.2) ×2" in op for op in stages[5].ops)  # the writeup's two Dropouts after fc1


def test_trace_stages_mlp():
    input_dims, stages = diagram.trace_stages(build_model("custom_mlp"))
    assert [s.shape for s in stages] == [(784,), (64,), (64,), (64,), (32,), (16,), (10,)]
    assert sum(s.params for s in stages) == 61_338


DISPLAY = {"lenet5": "LeNet-5", "custom_mlp": "CustomMLP", "lenet5_regularized": "LeNet5_Regularized"}  # the writeup's


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


@pytest.mark.parametrize("name", ["lenet5", "custom_mlp", "lenet5_regularized"])
def test_architecture_figure_draws_every_stage_with_its_shape_and_parameters(tmp_path, name):
    """One arrow per stage, each tensor's shape above it, each stage's parameter count in its
    label (summing to the model's), the title as given (the notebooks give the display name)."""
    model = build_model(name)
    input_dims, stages = diagram.trace_stages(model)
    path = tmp_path / "sub" / f"{name}.png"
    title = f"{DISPLAY[name]}: {count_parameters(model):,} parameters"
    fig = diagram.architecture_figure(model, path, title=title)
    assert_png(path)
    (ax,) = fig.axes
    assert ax.get_title() == title
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(stages)
    texts = _texts(ax)
    shapes = [diagram._shape_text(s) for s in [input_dims, *[stage.shape for stage in stages]]]
    assert [t for t in texts if t in shapes] == shapes  # every tensor's shape, in order
    assert shapes[0] == "1@28×28" and shapes[-1] == "10"
    assert "input" in texts and "logits" in texts
    counts = [int(m.replace(",", "")) for t in texts for m in re.findall(r"([\d,]+) params", t)]
    assert counts == [s.params for s in stages if s.params] and sum(counts) == count_parameters(model)


@pytest.mark.parametrize("name", ["lenet5", "custom_mlp", "lenet5_regularized"])
def test_architecture_figure_default_title_uses_the_display_name(name):
    model = build_model(name)
    title = diagram.architecture_figure(model).axes[0].get_title()
    assert DISPLAY[name] in title and f"{count_parameters(model):,} parameters" in title, title


def test_architecture_figure_leaves_the_model_in_training_mode():
    model = build_model("lenet5_regularized").train()
    diagram.architecture_figure(model)
    assert model.training


@pytest.mark.parametrize("key", ["lenet5", "custom_mlp", "lenet5_regularized"])
def test_diagram_labels_are_at_least_8_pt_in_the_pdf_and_never_overlap(key):
    """The report scales a figure to the text width (or its height limit): the layer labels must stay
    readable there, and no label box may cover another or the text above it."""
    from mnist_lib.paper import IMAGE_MAX_HEIGHT_IN, IMAGE_WIDTH, TEXT_WIDTH_IN

    fig = diagram.architecture_figure(build_model(key))
    width, height = fig.get_size_inches()
    scale = min(1.0, TEXT_WIDTH_IN * IMAGE_WIDTH / width, IMAGE_MAX_HEIGHT_IN / height)
    labels = [t for t in fig.axes[0].texts if t.get_bbox_patch() is not None]
    assert labels and min(t.get_fontsize() for t in labels) * scale >= 8
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_bbox_patch().get_window_extent(renderer) for t in labels]
    texts = [t.get_window_extent(renderer) for t in fig.axes[0].texts if t.get_bbox_patch() is None]
    for i, box in enumerate(boxes):
        assert not any(box.overlaps(other) for other in boxes[i + 1:] + texts), labels[i].get_text()
