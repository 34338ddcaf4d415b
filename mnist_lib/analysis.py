"""What the networks learned: accuracy under whole-pixel translations of the test images, a run's record (what
metrics.json keeps instead of model.pt) and the report's analysis figures drawn from it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from mnist_lib.data import Split
from mnist_lib.plots import save
from mnist_lib.train import evaluate, predict

AXIS_DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx) per pixel of shift: right, left, down, up


def shift_images(images: torch.Tensor, dy: int, dx: int, fill: float | int = 0) -> torch.Tensor:
    """``images`` (... x H x W) with their content moved ``dy`` pixels down and ``dx`` right
    (negative: up / left); what moves in is ``fill``, what moves out is lost (no wraparound)."""
    h, w = images.shape[-2:]
    out = torch.full_like(images, fill)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def shift_accuracy(model: nn.Module, split: Split, shifts: Sequence[int] = (0, 1, 2, 3, 4),
                   batch_size: int = 500) -> dict[int, float]:
    """Test accuracy (%) of ``model`` on ``split`` translated by ``s`` whole pixels (`shift_images`, background fill),
    the mean over the four axis directions, for each ``s`` in ``shifts``; shift 0 is `evaluate`'s accuracy. Cost:
    1 + 4 x (nonzero shifts) passes over the split (LeNet-5 on the 10,000 test images: ~15 s of one CPU core)."""
    split = split.to(next(model.parameters(), torch.empty(0)).device)
    # a blank pixel: 0 in uint8 storage (it normalizes to exactly the background); normalized floats: their minimum
    fill = 0 if split.stored.dtype == torch.uint8 else float(split.stored.min())

    def shifted(dy: int, dx: int) -> float:
        return evaluate(model, replace(split, stored=shift_images(split.stored, dy, dx, fill)), batch_size)[1]

    return {s: evaluate(model, split, batch_size)[1] if s == 0 else
            float(np.mean([shifted(dy * s, dx * s) for dy, dx in AXIS_DIRECTIONS])) for s in map(int, shifts)}


def conv1_record(model: nn.Module) -> dict[str, Any] | None:
    """conv1's weights and bias, and bn1's affine and running statistics where the model has
    BatchNorm: all the feature maps need, small enough for metrics.json (None without conv1)."""
    conv = getattr(model, "conv1", None)
    if not isinstance(conv, nn.Conv2d):
        return None
    as_list = lambda t: t.detach().cpu().double().tolist()
    record = {"weight": as_list(conv.weight), "bias": as_list(conv.bias), "padding": conv.padding[0], "bn": None}
    if isinstance(bn := getattr(model, "bn1", None), nn.BatchNorm2d):
        record["bn"] = {"weight": as_list(bn.weight), "bias": as_list(bn.bias),
                        "running_mean": as_list(bn.running_mean), "running_var": as_list(bn.running_var), "eps": bn.eps}
    return record


def run_record(model: nn.Module, data, shifts: bool = False) -> dict[str, Any]:
    """What the notebooks and the report draw from a trained model, kept in metrics.json instead of model.pt: the
    test images it gets wrong (index, predicted class), conv1's parameters and (``shifts``) its `shift_accuracy`."""
    test = data.test
    predicted = predict(model, test).to(test.labels.device)
    wrong = (predicted != test.labels).nonzero().flatten().tolist()
    record = {"test_wrong": [[i, int(predicted[i])] for i in wrong], "conv1": conv1_record(model)}
    if shifts:
        record["shift_acc"] = {str(s): acc for s, acc in shift_accuracy(model, test).items()}
    return record


def recorded_predictions(metrics: dict[str, Any], labels: torch.Tensor) -> torch.Tensor:
    """A finished run's test predictions from its record: the labels, but where it was wrong."""
    predicted = torch.as_tensor(labels).clone().cpu()
    for index, label in metrics["analysis"]["test_wrong"]:
        predicted[index] = label
    return predicted


def recorded_shift_table(metrics_by_name: Mapping[str, Sequence[dict[str, Any]]]):
    """Accuracy against shift from run records: one row per name, the mean over its runs' ``shift_acc``."""
    rows = {}
    for name, runs in metrics_by_name.items():
        if per_run := [m["analysis"]["shift_acc"] for m in runs if m.get("analysis", {}).get("shift_acc")]:
            rows[name] = {int(s): float(np.mean([acc[s] for acc in per_run])) for s in per_run[0]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(index="model", columns="shift (px)")


def conv1_maps(conv1: dict[str, Any], image: torch.Tensor) -> torch.Tensor:
    """conv1's feature maps of one normalized image (C x H x W) from a `conv1_record`: after the convolution,
    bn1 (in eval mode, where the model has it) and ReLU, what the first pooling layer receives."""
    x = image.reshape(1, 1, *image.shape[-2:]).double()
    t = lambda values: torch.tensor(values, dtype=torch.float64)
    z = F.conv2d(x, t(conv1["weight"]), t(conv1["bias"]), padding=conv1["padding"])
    if (bn := conv1["bn"]) is not None:
        z = F.batch_norm(z, t(bn["running_mean"]), t(bn["running_var"]), t(bn["weight"]), t(bn["bias"]),
                         training=False, eps=bn["eps"])
    return F.relu(z)[0].float()


def conv1_figure(conv1: dict[str, Any], image: torch.Tensor, path: str | Path | None = None,
                 title: str | None = None, label: Any = None) -> plt.Figure:
    """conv1's learned 5x5 filters (top row, centred at 0) and their feature maps of one normalized test digit
    (bottom row, after ReLU), one colour scale per row, with the digit itself at the bottom left."""
    weights = np.asarray(conv1["weight"])[:, 0]  # C x 5 x 5
    maps = conv1_maps(conv1, image).numpy()
    n = len(weights)
    fig, axes = plt.subplots(2, n + 1, figsize=(7, 3.0), gridspec_kw={"wspace": 0.12, "hspace": 0.3},
                             subplot_kw={"xticks": [], "yticks": []})
    wmax = float(np.abs(weights).max()) or 1.0
    rows = [(weights, "filter", dict(cmap="RdBu_r", vmin=-wmax, vmax=wmax), "weight"),
            (maps, "map", dict(cmap="magma", vmin=0, vmax=float(maps.max()) or 1.0),
             "after BN + ReLU" if conv1["bn"] is not None else "after ReLU")]
    for row, (images, name, scale, unit) in enumerate(rows):
        for k in range(n):
            im = axes[row, k + 1].imshow(images[k], interpolation="nearest", **scale)
            axes[row, k + 1].set_title(f"{name} {k + 1}", fontsize=9.5)
        bar = fig.colorbar(im, ax=list(axes[row, 1:]), fraction=0.025, pad=0.015)
        bar.ax.tick_params(labelsize=9.5)
        bar.set_label(unit, fontsize=9.5)
    axes[0, 0].text(0.5, 0.5, f"conv1's\n{n} filters\n(red +,\nblue −)", ha="center", va="center", fontsize=9.5,
                    transform=axes[0, 0].transAxes)
    axes[1, 0].imshow(image.reshape(*image.shape[-2:]).detach().cpu().numpy(), cmap="gray", interpolation="nearest")
    axes[1, 0].set_title("input" + (f" (label {label})" if label is not None else ""), fontsize=9.5)
    axes[0, 0].axis("off")
    if title != "":  # "" : no title (the report's caption says it)
        fig.suptitle(title or "conv1 filters and feature maps", fontsize=11)
    return save(fig, path)


def shift_figure(table, path: str | Path | None = None, title: str = "") -> plt.Figure:
    """Test accuracy against the shift in pixels (a `recorded_shift_table`), one line per model."""
    fig, ax = plt.subplots(figsize=(5.2, 2.4), layout="tight")
    table.T.plot(ax=ax, marker="o", markersize=4, legend=False)  # one line per model
    ax.set_xticks(table.columns)
    ax.set_xlabel("shift of the test images (pixels; mean of right, left, down, up)", fontsize=9)
    ax.set_ylabel("test accuracy (%)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.margins(x=0.08)
    ax.legend(fontsize=8.5, loc="lower left")
    ax.set_title(title, fontsize=10)
    return save(fig, path)
