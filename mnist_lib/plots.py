"""Figures for the notebooks and the report: architecture diagrams computed from the models,
training curves (mean over seeds with a band), confusion matrices, misclassified galleries and
the ablation / comparison charts. Each function draws one figure, saves it as a PNG when given
a path (folders are created) and returns the matplotlib Figure.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyArrowPatch, Rectangle
from torch import nn

from mnist_lib.files import ensure_writable_dir

DPI = 120
SPLIT_STYLE = {"train": ("tab:blue", "-"), "val": ("tab:green", "--"), "test": ("tab:red", "-")}
SPLIT_LABEL = {"train": "train", "val": "validation", "test": "test"}


def save(fig: plt.Figure, path: str | Path | None) -> plt.Figure:
    """Write ``fig`` as a PNG (creating the folder) when ``path`` is given; return it."""
    if path is not None:
        path = Path(path)
        ensure_writable_dir(path.parent, "figure folder")
        fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    return fig


# --------------------------------------------------------------------------- architecture

@dataclass
class Stage:
    """One arrow of the diagram: the layers that produce the next tensor, and its shape."""
    ops: list[str] = field(default_factory=list)
    params: int = 0
    shape: tuple[int, ...] = ()


def _describe(node: Any, modules: Mapping[str, nn.Module]) -> tuple[str, bool, int]:
    """(label, starts a new stage, parameters) for one traced node."""
    if node.op == "call_module":
        module = modules[node.target]
        params = sum(p.numel() for p in module.parameters())
        name = node.target
        if isinstance(module, nn.Conv2d):
            k = "×".join(map(str, module.kernel_size))
            pad = f", pad {module.padding[0]}" if any(module.padding) else ""
            return f"{name}: conv {k}{pad}\n{module.out_channels} maps", True, params
        if isinstance(module, nn.Linear):
            return f"{name}: linear {module.in_features}→{module.out_features}", True, params
        if isinstance(module, nn.BatchNorm2d):
            return "BatchNorm", False, params
        if isinstance(module, nn.Dropout):
            return f"Dropout({module.p:g})", False, params
        if isinstance(module, nn.Identity):
            return "", False, 0
        return type(module).__name__, True, params
    target = getattr(node.target, "__name__", str(node.target))
    if "max_pool2d" in target or node.name.startswith("max_pool2d"):
        k = node.args[1] if len(node.args) > 1 else node.kwargs.get("kernel_size")
        return f"max-pool {k}×{k}", True, 0
    if target in ("relu", "relu_"):
        return "ReLU", False, 0
    if target == "flatten":
        return "flatten", True, 0
    return target, False, 0


def trace_stages(model: nn.Module, input_shape: Sequence[int] = (1, 1, 28, 28)) -> tuple[tuple[int, ...], list[Stage]]:
    """Run a dummy input through ``model`` (torch.fx shape propagation) and group its
    operations into stages: each layer (conv, linear, pooling, flatten) opens a stage and the
    shape-keeping operations after it (BatchNorm, ReLU, Dropout) join it. Returns the input
    shape and the stages, each with the shape it produces (batch dimension dropped)."""
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    was_training = model.training
    model.eval()
    try:
        graph = symbolic_trace(model)
        ShapeProp(graph).propagate(torch.zeros(*input_shape))
    finally:
        model.train(was_training)
    modules = dict(graph.named_modules())
    stages: list[Stage] = []
    input_dims: tuple[int, ...] = tuple(input_shape[1:])
    for node in graph.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        label, opens, params = _describe(node, modules)
        shape = tuple(node.meta["tensor_meta"].shape[1:])
        if opens or not stages:
            stages.append(Stage())
        stage = stages[-1]
        if label and not (stage.ops and stage.ops[-1] == label):
            stage.ops.append(label)
        elif label:  # the same op twice in a row (two Dropouts): say so once, with a count
            stage.ops[-1] = label if label.endswith("×2") else label + " ×2"
        stage.params += params
        stage.shape = shape
    return input_dims, stages


def _shape_text(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return f"{shape[0]}@{shape[1]}×{shape[2]}"
    return "×".join(map(str, shape))


def _tensor_extent(shape: tuple[int, ...], max_side: float = 1.6) -> tuple[float, float, float]:
    """(left, right, top) of a drawn tensor relative to its centre, for the layout."""
    if len(shape) == 3:
        side = max(0.25, max_side * shape[1] / 28)
        spread = (min(shape[0], 6) - 1) * 0.08
        return side / 2, side / 2 + spread, side / 2 + spread
    height = max(0.25, max_side * math.log2(max(shape[-1], 2)) / math.log2(784))
    return 0.09, 0.09, height / 2


def _draw_tensor(ax: plt.Axes, x: float, y: float, shape: tuple[int, ...], color: str, max_side: float = 1.6) -> None:
    """A tensor as the classic LeNet picture, centred at (x, y): a stack of feature maps (side
    ∝ height, at most 6 drawn) or a bar (height ∝ log of the width)."""
    if len(shape) == 3:
        side = max(0.25, max_side * shape[1] / 28)
        layers = min(shape[0], 6)
        for i in range(layers):
            offset = (layers - 1 - i) * 0.08
            ax.add_patch(Rectangle((x - side / 2 + offset, y - side / 2 + offset), side, side,
                                   facecolor=color, edgecolor="black", linewidth=0.8, alpha=0.95))
        return
    height = 2 * _tensor_extent(shape, max_side)[2]
    ax.add_patch(Rectangle((x - 0.09, y - height / 2), 0.18, height, facecolor=color, edgecolor="black", linewidth=0.8))


def _stage_lines(stage: Stage) -> list[str]:
    """The label of one arrow: the layer's name, its operations, its parameter count."""
    ops = [op.split(": ", 1) for op in stage.ops]
    head = ops[0][0] if len(ops[0]) == 2 else ""
    lines = ([head] if head else []) + [line for o in ops for line in o[-1].split("\n")]
    if stage.params:
        lines.append(f"{stage.params:,} params")
    return lines


def _rows(shapes: list[tuple[int, ...]], per_row: int = 5) -> list[list[int]]:
    """Tensor indices per diagram row: one row when short, else break where the network
    flattens (convolutional part, then the fully connected part) or in the middle."""
    n = len(shapes)
    if n <= per_row:
        return [list(range(n))]
    flat = next((i for i in range(1, n) if len(shapes[i]) == 1 and len(shapes[i - 1]) == 3), None)
    cut = flat if flat is not None and 2 <= flat <= n - 2 and max(flat, n - flat) <= per_row + 1 else (n + 1) // 2
    return [list(range(cut)), list(range(cut, n))]


def architecture_figure(model: nn.Module, path: str | Path | None = None, title: str | None = None) -> plt.Figure:
    """The model's layer diagram, computed from the model itself: tensor shapes from a dummy
    forward pass (torch.fx), one arrow per layer with its operations and parameter count.
    Long networks wrap onto a second row, so the figure stays legible at page width."""
    input_dims, stages = trace_stages(model)
    shapes = [input_dims] + [s.shape for s in stages]
    extents = [_tensor_extent(shape) for shape in shapes]
    labels = [_stage_lines(stage) for stage in stages]  # labels[i]: the arrow into tensor i + 1
    gap = 2.5  # room for an arrow and the label box under it
    rows = _rows(shapes)
    xs: dict[int, float] = {}
    for r, row in enumerate(rows):
        x = 0.0 if r == 0 else gap + extents[row[0]][0]  # a wrapped row starts with its incoming arrow
        for k, i in enumerate(row):
            if k > 0:
                x += extents[row[k - 1]][1] + gap + extents[i][0]
            xs[i] = x
    line_h = 0.3
    ys: dict[int, float] = {}
    y = 0.0
    row_tops, row_bottoms = [], []
    for r, row in enumerate(rows):
        top = max(extents[i][2] for i in row)
        if r > 0:
            y = row_bottoms[-1] - 0.45 - top - 0.45
        row_tops.append(y + top + 0.55)
        depth = max(len(labels[i - 1]) for i in row if i > 0) if any(i > 0 for i in row) else 0
        row_bottoms.append(y - max(0.95, max(extents[i][2] for i in row) + 0.3) - line_h * depth - 0.25)
        for i in row:
            ys[i] = y
    width = max(xs[i] + extents[i][1] for i in xs) + 0.9
    fig, ax = plt.subplots(figsize=(width * 0.62, (row_tops[0] - row_bottoms[-1]) * 0.62 + 0.35))
    for i, shape in enumerate(shapes):
        color = "#d9d9d9" if i == 0 else ("#a1d99b" if i == len(shapes) - 1 else
                                          "#9ecae1" if len(shape) == 3 else "#fdd0a2")
        _draw_tensor(ax, xs[i], ys[i], shape, color)
        ax.text(xs[i], ys[i] + _row_top(extents, rows, i) + 0.1, _shape_text(shape), ha="center", va="bottom",
                fontsize=10, fontweight="bold")
    ax.text(xs[0], ys[0] - extents[0][2] - 0.1, "input", ha="center", va="top", fontsize=9.5)
    last = len(shapes) - 1
    ax.text(xs[last], ys[last] - extents[last][2] - 0.1, "logits", ha="center", va="top", fontsize=9.5)
    label_top = {r: ys[row[0]] - max(0.95, max(extents[i][2] for i in row) + 0.3) for r, row in enumerate(rows)}
    for r, row in enumerate(rows):
        for k, i in enumerate(row):
            if i == 0:
                continue
            end = xs[i] - extents[i][0] - 0.08
            y = ys[i]
            if k == 0:  # wrapped: come down from the end of the previous row
                prev = rows[r - 1][-1]
                sx, sy = xs[prev] + extents[prev][1] + 0.08, ys[prev]
                turn_x = sx + 0.45
                mid_y = row_bottoms[r - 1] - 0.2
                start = 0.15
                ax.plot([sx, turn_x, turn_x, start, start], [sy, sy, mid_y, mid_y, y], color="#444444", linewidth=1.1)
            else:
                start = xs[row[k - 1]] + extents[row[k - 1]][1] + 0.08
            ax.add_patch(FancyArrowPatch((start, y), (end, y), arrowstyle="-|>", mutation_scale=13,
                                         color="#444444", linewidth=1.1))
            ax.text((start + end) / 2, label_top[r], "\n".join(labels[i - 1]), ha="center", va="top",
                    fontsize=9, linespacing=1.3,
                    bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#bbbbbb", linewidth=0.6))
    total = sum(p.numel() for p in model.parameters())
    ax.set_title(title or f"{type(model).__name__}: {total:,} parameters", fontsize=12)
    ax.set_xlim(-extents[0][0] - 0.3, width - 0.3)
    ax.set_ylim(row_bottoms[-1], row_tops[0])
    ax.set_aspect("equal")
    ax.axis("off")
    return save(fig, path)


def _row_top(extents, rows, i) -> float:
    row = next(r for r in rows if i in r)
    return max(extents[j][2] for j in row)


# --------------------------------------------------------------------------- training curves

def _mean_band(runs: Sequence[Sequence[float | None]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epoch axis, mean, min and max over seeds (runs of different lengths: common epochs)."""
    length = min(len(r) for r in runs)
    values = np.array([[np.nan if v is None else v for v in r[:length]] for r in runs], dtype=float)
    return np.arange(1, length + 1), np.nanmean(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)


def _series(histories: Sequence[Sequence[Mapping[str, Any]]], key: str) -> list[list[float | None]]:
    return [[epoch.get(key) for epoch in history] for history in histories]


def curves_figure(histories: Sequence[Sequence[Mapping[str, Any]]], path: str | Path | None = None,
                  title: str = "", selected_epochs: Sequence[int] | None = None) -> plt.Figure:
    """Loss and accuracy per epoch for train, validation and test: the mean over seeds as a
    line, the range over seeds as a band; the kept (best-validation) epochs marked."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    n = len(histories)
    for ax, metric, ylabel in ((axes[0], "loss", "cross-entropy loss"), (axes[1], "acc", "accuracy (%)")):
        for split in ("train", "val", "test"):
            key = f"{split}_{metric}"
            series = _series(histories, key)
            if all(v is None for run in series for v in run):
                continue
            epochs, mean, low, high = _mean_band(series)
            color, style = SPLIT_STYLE[split]
            ax.plot(epochs, mean, style, color=color, marker="o", markersize=3, label=SPLIT_LABEL[split])
            if n > 1:
                ax.fill_between(epochs, low, high, color=color, alpha=0.18, linewidth=0)
        if selected_epochs:
            for e in sorted(set(selected_epochs)):
                ax.axvline(e, color="grey", linestyle=":", linewidth=0.9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_title("loss")
    axes[1].set_title("accuracy")
    axes[1].legend(loc="lower right")
    band = f"mean of {n} seeds, band: min–max" if n > 1 else "one seed"
    fig.suptitle(f"{title} ({band}; dotted: kept epoch)" if title else band, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def full_result_figure(histories: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
                       path: str | Path | None = None, title: str = "") -> plt.Figure:
    """The writeup's full_result: test accuracy and test loss per epoch of every model
    (label -> per-seed histories), mean over seeds with a min–max band."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, runs) in enumerate(histories.items()):
        color = colors[i % len(colors)]
        for ax, key in ((axes[0], "test_acc"), (axes[1], "test_loss")):
            epochs, mean, low, high = _mean_band(_series(runs, key))
            ax.plot(epochs, mean, color=color, marker="o", markersize=3, label=label)
            if len(runs) > 1:
                ax.fill_between(epochs, low, high, color=color, alpha=0.15, linewidth=0)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].set_ylabel("test loss")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_title("test accuracy")
    axes[1].set_title("test loss")
    axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


# --------------------------------------------------------------------------- errors

def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, classes: int = 10) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    index = labels.long() * classes + predictions.long()
    return torch.bincount(index, minlength=classes * classes).reshape(classes, classes).numpy()


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], path: str | Path | None = None,
                     title: str = "") -> plt.Figure:
    """Seaborn heatmap of a confusion matrix; the diagonal is masked so the errors stand out
    (its counts are written on the row labels as per-class accuracy)."""
    import seaborn as sns

    matrix = np.asarray(matrix)
    per_class = 100 * np.diag(matrix) / np.maximum(matrix.sum(1), 1)
    off = matrix.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    sns.heatmap(off, annot=matrix, fmt="d", cmap="Reds", cbar_kws={"label": "errors (off-diagonal)"},
                linewidths=0.4, linecolor="#eeeeee", ax=ax, annot_kws={"fontsize": 7.5},
                xticklabels=class_names, yticklabels=[f"{c} ({a:.1f}%)" for c, a in zip(class_names, per_class)])
    for i in range(len(matrix)):  # the diagonal, grey
        ax.add_patch(Rectangle((i, i), 1, 1, facecolor="#e8e8e8", edgecolor="white", zorder=0.5))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (per-class accuracy)")
    ax.set_title(title or "confusion matrix (test set)", fontsize=11)
    plt.setp(ax.get_xticklabels(), rotation=45 if max(len(c) for c in class_names) > 2 else 0, ha="right")
    fig.tight_layout()
    return save(fig, path)


def misclassified_figure(images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor,
                         class_names: Sequence[str], path: str | Path | None = None, title: str = "",
                         count: int = 32, per_row: int = 8) -> plt.Figure:
    """A torchvision make_grid gallery of the first ``count`` misclassified images (pixels in
    [0, 1]), each captioned 'true → predicted'."""
    from torchvision.utils import make_grid

    wrong = (predictions != labels).nonzero().flatten()[:count]
    fig_rows = max(1, math.ceil(len(wrong) / per_row))
    fig, ax = plt.subplots(figsize=(per_row * 1.15, fig_rows * 1.35 + 0.6))
    if len(wrong) == 0:
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        ax.axis("off")
        return save(fig, path)
    pad = 2
    grid = make_grid(images[wrong].float().cpu(), nrow=per_row, padding=pad, pad_value=1.0)
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray", interpolation="nearest")
    cell = images.shape[-1] + pad
    short = [c if len(c) <= 8 else c[:7] + "." for c in class_names]
    for k, i in enumerate(wrong.tolist()):
        row, col = divmod(k, per_row)
        ax.text(col * cell + pad + 1, row * cell + pad + 0.5, f"{short[int(labels[i])]}→{short[int(predictions[i])]}",
                color="yellow", fontsize=7, va="top", ha="left",
                bbox=dict(facecolor="black", alpha=0.55, pad=0.6, linewidth=0))
    ax.axis("off")
    total = int((predictions != labels).sum())
    ax.set_title(title or f"misclassified test images (first {len(wrong)} of {total:,}; true→predicted)", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


# --------------------------------------------------------------------------- comparisons

def mean_std_figure(rows: Sequence[Mapping[str, Any]], path: str | Path | None = None, title: str = "",
                    group_key: str = "recipe", xlabel: str = "test accuracy (%)",
                    failed_below: float = 50.0) -> plt.Figure:
    """Mean ± std per row (dicts with ``label``, ``values`` (per seed) and ``group_key``),
    one marker colour per group, the seeds as dots: the ablation and dataset charts."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    groups = list(dict.fromkeys(r[group_key] for r in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(labels) * max(1, len(groups) * 0.7) + 1.4))
    height = 0.7 / max(len(groups), 1)
    for g, group in enumerate(groups):
        for r in rows:
            if r[group_key] != group:
                continue
            y = labels.index(r["label"]) + (g - (len(groups) - 1) / 2) * height
            values = list(r["values"])
            mean = statistics.fmean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            ax.errorbar(mean, y, xerr=std, fmt="o", color=colors[g % len(colors)], capsize=4,
                        label=str(group) if r is next(x for x in rows if x[group_key] == group) else None)
            ax.scatter(values, [y] * len(values), s=12, color=colors[g % len(colors)], alpha=0.45, zorder=3)
            ax.annotate(f"{mean:.2f}", (mean, y), xytext=(0, 5), textcoords="offset points",
                        ha="center", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=8.5)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.12)
    low, high = ax.get_xlim()
    ax.set_xlim(max(low, 0.0), min(high, 100.5))  # accuracies: a wide error bar is cut at the scale's ends
    # A run that did not learn (near chance) would squash every real difference into one pixel:
    # scale to the runs that learned and say in words what lies off the left edge.
    learned = [v for r in rows for v in r["values"] if v >= failed_below]
    failed = [(r, v) for r in rows for v in r["values"] if v < failed_below]
    if failed and learned:
        left = min(learned) - 0.25 * (max(learned) - min(learned) + 0.4)
        ax.set_xlim(left, min(max(learned) + 0.15 * (max(learned) - min(learned) + 0.4), 100.5))
        for r, v in failed:
            y = labels.index(r["label"]) + (groups.index(r[group_key]) - (len(groups) - 1) / 2) * height
            ax.annotate(f"◄ a seed at {v:.1f}% (did not learn); mean off scale", (left, y), xytext=(4, -9),
                        textcoords="offset points", fontsize=7, color="0.3")
    if len(groups) > 1 or groups[0] not in ("", None):
        ax.legend(title=group_key, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title or "mean ± std over seeds (dots: single seeds)", fontsize=11)
    fig.tight_layout()
    return save(fig, path)
