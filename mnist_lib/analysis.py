"""What the networks learned and where they fail: the most frequent confusions (one seed or
summed over seeds), test accuracy under whole-pixel translations of the test images, and the
figures of the report's analysis section (conv1's filters and feature maps; accuracy vs shift).
The report notebook holds the prose; this module holds the logic and the figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from mnist_lib.data import Split
from mnist_lib.plots import confusion_matrix, save
from mnist_lib.train import evaluate, predict

# (dy, dx) per pixel of shift: the content moves right, left, down, up.
AXIS_DIRECTIONS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}


# --------------------------------------------------------------------------- confusions

def _top_from_matrix(matrix: np.ndarray, k: int, class_names: Sequence[str] | None,
                     runs: int = 1) -> list[tuple[dict[str, Any], int, int]]:
    """The k largest off-diagonal cells of a (summed) confusion matrix as (row, true, predicted),
    counts per run; ties go by true class, then predicted class."""
    matrix = np.asarray(matrix)
    names = list(class_names) if class_names is not None else [str(c) for c in range(len(matrix))]
    sizes = matrix.sum(1) / runs  # test images per true class (per run)
    cells = sorted((-int(matrix[t, p]), t, p) for t in range(len(matrix)) for p in range(len(matrix))
                   if t != p and matrix[t, p] > 0)
    rows = []
    for negative, t, p in cells[:k]:
        count = -negative if runs == 1 else -negative / runs
        rows.append(({"true": names[t], "predicted": names[p], "count": count,
                      "share (%)": float(100.0 * count / sizes[t])}, t, p))
    return rows


def top_confusions(labels, predictions, k: int = 5, class_names: Sequence[str] | None = None,
                   classes: int = 10) -> list[dict[str, Any]]:
    """The ``k`` most frequent (true -> predicted) errors of one set of predictions, as dicts
    ``true``, ``predicted``, ``count`` (int) and ``share (%)`` (of the true class's images).
    Fewer than ``k`` when there are fewer distinct errors; ties go by class order."""
    matrix = confusion_matrix(torch.as_tensor(labels), torch.as_tensor(predictions), classes)
    return [row for row, _, _ in _top_from_matrix(matrix, k, class_names)]


def confusions_over_seeds(labels, predictions_by_seed: Mapping[Any, Any] | Sequence[Any], k: int = 5,
                          class_names: Sequence[str] | None = None, classes: int = 10) -> list[dict[str, Any]]:
    """`top_confusions` of several seeds' predictions of the same images, ranked on the summed
    confusion matrix: ``count`` is the mean count per seed (float), ``share (%)`` the mean share,
    and ``per seed`` each seed's count of that pair (in the order of ``predictions_by_seed``)."""
    preds = list(predictions_by_seed.values() if isinstance(predictions_by_seed, Mapping) else predictions_by_seed)
    if not preds:
        raise ValueError("confusions_over_seeds needs the predictions of at least one seed")
    labels = torch.as_tensor(labels)
    matrices = [confusion_matrix(labels, torch.as_tensor(p), classes) for p in preds]
    rows = _top_from_matrix(sum(matrices), k, class_names, runs=len(preds))
    return [{**row, "count": float(row["count"]), "per seed": [int(m[t, p]) for m in matrices]}
            for row, t, p in rows]


# --------------------------------------------------------------------------- translations

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


def _background(split: Split) -> float | int:
    """The stored value of a blank pixel: 0 for uint8 storage (it normalizes to -mean/std,
    exactly the background); for already-normalized floats, their minimum (MNIST's 0 pixel)."""
    return 0 if split.stored.dtype == torch.uint8 else float(split.stored.min())


def shift_accuracy(model: nn.Module, split: Split, shifts: Sequence[int] = (0, 1, 2, 3, 4),
                   batch_size: int = 500, directions: Mapping[str, tuple[int, int]] = AXIS_DIRECTIONS
                   ) -> dict[int, float]:
    """Test accuracy (%) of ``model`` on ``split`` with every image translated by ``s`` whole
    pixels, for each ``s`` in ``shifts``: the mean over the four axis directions (right, left,
    down, up), the vacated border filled with the background (a 0 pixel), no wraparound.
    Deterministic; shift 0 is `evaluate`'s accuracy. Cost: 1 + 4 x (nonzero shifts) passes over
    the split (17 by default; LeNet-5 on the 10,000 test images: ~15 s of one CPU core, the MLP
    ~1 s); pass ``split[:n]`` for a cheaper estimate."""
    device = next(model.parameters(), torch.empty(0)).device
    split = split.to(device)
    fill = _background(split)
    result = {}
    for s in shifts:
        s = int(s)
        if s == 0:
            result[s] = evaluate(model, split, batch_size)[1]
            continue
        accs = [evaluate(model, Split(shift_images(split.stored, dy * s, dx * s, fill), split.labels,
                                      split.mean, split.std), batch_size)[1]
                for dy, dx in directions.values()]
        result[s] = float(np.mean(accs))
    return result


def shift_table(models_by_name: Mapping[str, nn.Module | Sequence[nn.Module]], split: Split,
                shifts: Sequence[int] = (0, 1, 2, 3, 4), batch_size: int = 500):
    """`shift_accuracy` of several models as a DataFrame: one row per name, one column per shift
    (in pixels); a name given a list of (seed) models gets the mean over them."""
    rows = {}
    for name, models in models_by_name.items():
        models = [models] if isinstance(models, nn.Module) else list(models)
        per_seed = [shift_accuracy(m, split, shifts, batch_size) for m in models]
        rows[name] = {int(s): float(np.mean([acc[int(s)] for acc in per_seed])) for s in shifts}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=[int(s) for s in shifts])
    frame.index.name = "model"
    frame.columns.name = "shift (px)"
    return frame


# --------------------------------------------------------------------------- figures

# --------------------------------------------------------------------------- a run's record

def conv1_record(model: nn.Module) -> dict[str, Any] | None:
    """conv1's weights and bias, and bn1's affine and running statistics where the model has
    BatchNorm: all the feature maps need, small enough for metrics.json (None without conv1)."""
    conv = getattr(model, "conv1", None)
    if not isinstance(conv, nn.Conv2d):
        return None
    bn = getattr(model, "bn1", None)
    as_list = lambda t: t.detach().cpu().double().tolist()
    record = {"weight": as_list(conv.weight), "bias": as_list(conv.bias), "padding": conv.padding[0], "bn": None}
    if isinstance(bn, nn.BatchNorm2d):
        record["bn"] = {"weight": as_list(bn.weight), "bias": as_list(bn.bias), "running_mean": as_list(bn.running_mean),
                        "running_var": as_list(bn.running_var), "eps": bn.eps}
    return record


def run_record(model: nn.Module, data, shifts: bool = False) -> dict[str, Any]:
    """What the notebooks and the report draw from a trained model, computed once when its run
    finishes, so the run folder's metrics.json is enough without model.pt: the test images it
    gets wrong (index, predicted class), conv1's parameters, and (``shifts``) its accuracy on
    shifted test images (`shift_accuracy`)."""
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
    """`shift_table` from run records: one row per name, the mean over its runs' ``shift_acc``."""
    rows = {}
    for name, runs in metrics_by_name.items():
        per_run = [m["analysis"]["shift_acc"] for m in runs if m.get("analysis", {}).get("shift_acc")]
        if per_run:
            rows[name] = {int(s): float(np.mean([acc[s] for acc in per_run])) for s in per_run[0]}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model"
    frame.columns.name = "shift (px)"
    return frame


def conv1_maps(conv1: dict[str, Any], image: torch.Tensor) -> torch.Tensor:
    """conv1's feature maps of one normalized image (C x H x W) from a `conv1_record`: after the
    convolution, bn1 (in eval mode, where the model has it) and ReLU: what the first pooling
    layer receives."""
    x = image.reshape(1, 1, *image.shape[-2:]).double()
    t = lambda values: torch.tensor(values, dtype=torch.float64)
    z = F.conv2d(x, t(conv1["weight"]), t(conv1["bias"]), padding=conv1["padding"])
    bn = conv1["bn"]
    if bn is not None:
        z = F.batch_norm(z, t(bn["running_mean"]), t(bn["running_var"]), t(bn["weight"]), t(bn["bias"]),
                         training=False, eps=bn["eps"])
    return F.relu(z)[0].float()


def conv1_figure(conv1: dict[str, Any], image: torch.Tensor, path: str | Path | None = None,
                 title: str | None = None, label: Any = None) -> plt.Figure:
    """conv1's learned 5x5 filters (top row; diverging colormap centred at 0, one scale for all)
    and their feature maps of one normalized test digit (bottom row, after ReLU, one scale for
    all), with the digit itself at the bottom left."""
    weights = np.asarray(conv1["weight"])[:, 0]  # C x 5 x 5
    maps = conv1_maps(conv1, image).numpy()
    n = len(weights)
    has_bn = conv1["bn"] is not None
    after = "BN + ReLU" if has_bn else "ReLU"
    fig, axes = plt.subplots(2, n + 1, figsize=(7, 3.0), gridspec_kw={"wspace": 0.12, "hspace": 0.3})
    wmax = float(np.abs(weights).max()) or 1.0
    mmax = float(maps.max()) or 1.0
    for k in range(n):
        w_im = axes[0, k + 1].imshow(weights[k], cmap="RdBu_r", vmin=-wmax, vmax=wmax, interpolation="nearest")
        axes[0, k + 1].set_title(f"filter {k + 1}", fontsize=9)
        m_im = axes[1, k + 1].imshow(maps[k], cmap="magma", vmin=0, vmax=mmax, interpolation="nearest")
        axes[1, k + 1].set_title(f"map {k + 1}", fontsize=9)
    axes[0, 0].text(0.5, 0.5, f"conv1's\n{n} filters\n(red +,\nblue −)", ha="center", va="center", fontsize=9,
                    transform=axes[0, 0].transAxes)
    axes[1, 0].imshow(image.reshape(*image.shape[-2:]).detach().cpu().numpy(), cmap="gray", interpolation="nearest")
    axes[1, 0].set_title("input" + (f" (label {label})" if label is not None else ""), fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].axis("off")
    for im, row, text in ((w_im, 0, "weight"), (m_im, 1, f"after {after}")):
        bar = fig.colorbar(im, ax=list(axes[row, 1:]), fraction=0.025, pad=0.015)
        bar.ax.tick_params(labelsize=8)
        bar.set_label(text, fontsize=8)
    fig.suptitle(title or "conv1 filters and feature maps", fontsize=11)
    return save(fig, path)


def shift_figure(table, path: str | Path | None = None, title: str | None = None) -> plt.Figure:
    """Test accuracy against the shift in pixels (a `shift_table`), one line per model."""
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    shifts = [int(s) for s in table.columns]
    for name, row in table.iterrows():
        ax.plot(shifts, row.values, marker="o", markersize=4, label=str(name))
    ax.set_xticks(shifts)
    ax.set_xlabel("shift of the test images (pixels; mean of right, left, down, up)", fontsize=9)
    ax.set_ylabel("test accuracy (%)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.margins(x=0.08)
    ax.legend(fontsize=8.5, loc="lower left")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)
