"""The three networks: the writeup's parameter counts, layer by layer, and their arithmetic."""

import pytest
import torch
from torch import nn

from mnist_lib.errors import MnistLibError
from mnist_lib.models import CustomMLP, LeNet5, LeNet5Regularized, build_model, count_parameters, parameter_frame

# The writeup's hand calculations (the spec, not results).
WRITEUP_TOTALS = {"lenet5": 61_706, "custom_mlp": 61_338, "lenet5_regularized": 61_750}
WRITEUP_LENET5 = {"conv1": 156, "pool1": 0, "conv2": 2_416, "pool2": 0, "fc1": 48_120, "fc2": 10_164, "fc3": 850}
WRITEUP_MLP = {"fc1": 50_240, "fc2": 4_160, "fc3": 4_160, "fc4": 2_080, "fc5": 528, "fc6": 170}


@pytest.mark.parametrize("name, total", WRITEUP_TOTALS.items())
def test_totals_match_the_writeup(name, total):
    model = build_model(name)
    assert count_parameters(model) == total
    frame = parameter_frame(model)
    assert frame.total.iloc[:-1].sum() == total
    assert int(frame.total.iloc[-1]) == total


def layer_rows(model):
    """The parameter table's rows (named tuples) by layer name, without the closing total row."""
    return {row.layer: row for row in parameter_frame(model).iloc[:-1].itertuples(index=False)}


def test_lenet5_rows_match_the_hand_calculation():
    rows = layer_rows(LeNet5())
    assert {name: r.total for name, r in rows.items()} == WRITEUP_LENET5
    assert rows["conv1"].arithmetic == "5×5×1×6 + 6 = 156"
    assert rows["conv2"].arithmetic == "5×5×6×16 + 16 = 2,416"
    assert rows["fc1"].arithmetic == "400×120 + 120 = 48,120"
    assert rows["fc2"].arithmetic == "120×84 + 84 = 10,164"
    assert rows["fc3"].arithmetic == "84×10 + 10 = 850"
    assert (rows["conv1"].weights, rows["conv1"].biases, rows["conv1"].kind) == (150, 6, "Conv2d")
    assert list(rows)[:4] == ["conv1", "pool1", "conv2", "pool2"]  # the writeup lists the pooling layers


def test_custom_mlp_rows_match_the_hand_calculation():
    rows = layer_rows(CustomMLP())
    assert {name: r.total for name, r in rows.items()} == WRITEUP_MLP
    assert rows["fc1"].arithmetic == "784×64 + 64 = 50,240"
    assert rows["fc6"].arithmetic == "16×10 + 10 = 170"


def test_regularized_adds_only_batchnorm_scale_and_shift():
    rows = layer_rows(LeNet5Regularized())
    assert rows["bn1"].arithmetic == "6 + 6 = 12"
    assert rows["bn2"].arithmetic == "16 + 16 = 32"
    assert {k: v.total for k, v in rows.items() if not k.startswith("bn")} == WRITEUP_LENET5


def test_parameter_frame_total_row():
    frame = parameter_frame(LeNet5())
    assert list(frame.layer) == ["conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "fc3", "total"]
    assert frame.arithmetic.iloc[-1] == "156 + 2,416 + 48,120 + 10,164 + 850 = 61,706"


@pytest.mark.parametrize("name", WRITEUP_TOTALS)
def test_forward_gives_ten_logits(name):
    model = build_model(name).eval()
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_regularized_model_has_batchnorm_and_dropout():
    model = LeNet5Regularized()
    assert isinstance(model.bn1, nn.BatchNorm2d) and isinstance(model.bn2, nn.BatchNorm2d)
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.2
    plain = LeNet5()
    assert isinstance(plain.bn1, nn.Identity) and isinstance(plain.dropout, nn.Identity)


def test_variant_knobs():
    only_bn = build_model("lenet5", batchnorm=True)
    assert isinstance(only_bn.bn1, nn.BatchNorm2d) and isinstance(only_bn.dropout, nn.Identity)
    only_dropout = build_model("lenet5_regularized", batchnorm=False, dropout=0.5)
    assert isinstance(only_dropout.bn1, nn.Identity) and only_dropout.dropout.p == 0.5
    with pytest.raises(MnistLibError, match="not custom_mlp"):
        build_model("custom_mlp", dropout=0.2)


def test_unknown_model():
    with pytest.raises(MnistLibError, match="model 'vgg' is unknown"):
        build_model("vgg")
