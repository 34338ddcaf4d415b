"""The three networks the writeup compares, a registry by name, and per-layer parameter tables."""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from mnist_lib.config import choice
from mnist_lib.errors import MnistLibError


class LeNet5(nn.Module):
    """LeNet-5 from LeCun et al., "Gradient-based learning applied to document recognition"
    (Proc. IEEE, 1998), as the course builds it: 28x28 input padded by 2 in conv1 (the paper
    pads the image to 32x32 instead), max-pooling and ReLU. 61,706 parameters. ``batchnorm`` and
    ``dropout`` turn on `LeNet5Regularized`'s regularization, so the ablation can switch each on alone."""

    def __init__(self, num_classes: int = 10, batchnorm: bool = False, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(6) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.bn2 = nn.BatchNorm2d(16) if batchnorm else nn.Identity()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        # The writeup's three Dropouts: after fc1, before fc2 and before fc3. Dropout has no
        # state, so one module serves all three places.
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # 6x28x28 -> 6x14x14
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # 16x10x10 -> 16x5x5
        x = torch.flatten(x, 1)
        # Dropout commutes with ReLU (both keep zeros and positive scaling), so "fc1 then
        # Dropout" and "Dropout then fc2" are two Dropouts in a row, exactly as written.
        x = self.dropout(self.dropout(F.relu(self.fc1(x))))
        x = self.dropout(F.relu(self.fc2(x)))
        return self.fc3(x)


class LeNet5Regularized(LeNet5):
    """LeNet-5 with BatchNorm2d after conv1 and conv2 (Ioffe & Szegedy, 2015) and Dropout(0.2)
    after fc1 and before fc2 and fc3 (Srivastava et al., 2014), as the writeup lists.
    61,750 parameters (BatchNorm adds a scale and a shift per channel: 2x(6+16) = 44)."""

    def __init__(self, num_classes: int = 10, batchnorm: bool = True, dropout: float = 0.2):
        super().__init__(num_classes, batchnorm=batchnorm, dropout=dropout)


class CustomMLP(nn.Module):
    """A ReLU multilayer perceptron 784-64-64-64-32-16-10, sized to match LeNet-5's parameter
    count (61,338 against 61,706) so the comparison is about architecture, not capacity."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 64)
        self.fc4 = nn.Linear(64, 32)
        self.fc5 = nn.Linear(32, 16)
        self.fc6 = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        for layer in (self.fc1, self.fc2, self.fc3, self.fc4, self.fc5):
            x = F.relu(layer(x))
        return self.fc6(x)


ARCHITECTURES: dict[str, type[nn.Module]] = {"lenet5": LeNet5, "custom_mlp": CustomMLP,
                                             "lenet5_regularized": LeNet5Regularized}


def build_model(name: str, batchnorm: bool | None = None, dropout: float | None = None) -> nn.Module:
    """A fresh model by registry name; ``batchnorm``/``dropout`` override a LeNet's own choice."""
    choice("model", name, tuple(ARCHITECTURES))
    kwargs = {k: v for k, v in (("batchnorm", batchnorm), ("dropout", dropout)) if v is not None}
    if kwargs and name == "custom_mlp":
        raise MnistLibError("batchnorm/dropout variants apply to the LeNet-5 models, not custom_mlp")
    return ARCHITECTURES[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_frame(model: nn.Module) -> pd.DataFrame:
    """One row per layer that has parameters, with the writeup's arithmetic spelled out (e.g.
    ``5×5×1×6 + 6 = 156``), and a closing 'total' row; computed from the modules, so it cannot drift."""
    rows = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            continue
        # The weight's shape as the writeup multiplies it: kernel, inputs, outputs. BatchNorm has one
        # scale (gamma) per channel; its shift (beta) is the bias.
        shape = module.weight.shape
        factors = "×".join(map(str, [*shape[2:], *reversed(shape[:2])]))
        weights = module.weight.numel()
        biases = module.bias.numel() if module.bias is not None else 0
        rows.append(dict(layer=name, kind=type(module).__name__, weights=weights, biases=biases,
                         total=weights + biases, arithmetic=f"{factors} + {biases:,} = {weights + biases:,}"))
    if isinstance(model, LeNet5):
        # The pooling is functional (F.max_pool2d) but the writeup lists it as layers: 0 parameters.
        for i in (2, 1):
            after = max(k for k, r in enumerate(rows) if r["layer"] in (f"conv{i}", f"bn{i}"))
            rows.insert(after + 1, dict(layer=f"pool{i}", kind="MaxPool2d 2×2", weights=0, biases=0, total=0,
                                        arithmetic="no parameters"))
    frame = pd.DataFrame(rows)
    total = int(frame.total.sum())
    addends = " + ".join(f"{t:,}" for t in frame.total if t)
    frame.loc[len(frame)] = ["total", "", int(frame.weights.sum()), int(frame.biases.sum()), total,
                             f"{addends} = {total:,}"]
    return frame
