"""mnist_lib.diagram: the architecture diagram's shapes and parameter counts come from the
models themselves, and drawing it is written as a PNG without changing the model."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

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


@pytest.mark.parametrize("name", ["lenet5", "custom_mlp", "lenet5_regularized"])
def test_architecture_figure_written(tmp_path, name):
    path = tmp_path / "sub" / f"{name}.png"
    diagram.architecture_figure(build_model(name), path)
    assert_png(path)


def test_architecture_figure_leaves_the_model_in_training_mode():
    model = build_model("lenet5_regularized").train()
    diagram.architecture_figure(model)
    assert model.training
