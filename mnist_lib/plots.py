"""Figures for the notebooks and the report: training curves (mean over seeds with a band), confusion
matrices, misclassified galleries and the ablation / comparison charts. Each function draws one figure,
saves it as a PNG when given a path (folders are created) and returns the matplotlib Figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from mnist_lib import stats
from mnist_lib.files import ensure_writable_dir

SPLITS = {"train": ("train", "tab:blue", "-"), "val": ("validation", "tab:green", "--"),
          "test": ("test", "tab:red", "-")}  # split -> (label, colour, line style)


def save(fig: plt.Figure, path: str | Path | None) -> plt.Figure:
    """Write ``fig`` as a PNG (creating the folder) when ``path`` is given; return it."""
    if path is not None:
        ensure_writable_dir(Path(path).parent, "figure folder")
        fig.savefig(path, dpi=120, bbox_inches="tight", facecolor="white")
    return fig


def _mean_band(runs: Sequence[Sequence[float | None]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epoch axis, mean, min and max over seeds (runs of different lengths: common epochs)."""
    length = min(len(r) for r in runs)
    values = np.array([r[:length] for r in runs], dtype=float)  # None -> NaN
    return np.arange(1, length + 1), np.nanmean(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)


def _band_line(ax: plt.Axes, histories: Sequence[Sequence[Mapping[str, Any]]], key: str, color: str, alpha: float,
               **line: Any) -> np.ndarray:
    """Plot ``key``'s mean over the seeds' histories, with a min–max band when there are several; the mean."""
    epochs, mean, low, high = _mean_band([[epoch.get(key) for epoch in history] for history in histories])
    ax.plot(epochs, mean, color=color, **line)
    if len(histories) > 1:
        ax.fill_between(epochs, low, high, color=color, alpha=alpha, linewidth=0)
    return mean


def curves_figure(histories: Sequence[Sequence[Mapping[str, Any]]], path: str | Path | None = None,
                  title: str = "", selected_epochs: Sequence[int] | None = None) -> plt.Figure:
    """Loss and accuracy per epoch for train, validation and test: the mean over seeds as a
    line, the range over seeds as a band; the kept (best-validation) epochs marked."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="tight")
    for ax, metric, name, ylabel in ((axes[0], "loss", "loss", "cross-entropy loss"),
                                     (axes[1], "acc", "accuracy", "accuracy (%)")):
        for split, (label, color, style) in SPLITS.items():
            if any(epoch.get(f"{split}_{metric}") is not None for history in histories for epoch in history):
                _band_line(ax, histories, f"{split}_{metric}", color, 0.18, linestyle=style, marker="o",
                           markersize=3, label=label)
        for e in sorted(set(selected_epochs or ())):
            ax.axvline(e, color="grey", linestyle=":", linewidth=0.9)
        ax.set(title=name, xlabel="epoch", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[1].legend(loc="lower right")
    band = f"mean of {len(histories)} seeds, band: min–max" if len(histories) > 1 else "one seed"
    fig.suptitle(f"{title} ({band}; dotted: kept epoch)" if title else band, fontsize=11)
    return save(fig, path)


def full_result_figure(histories: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
                       path: str | Path | None = None, title: str = "") -> plt.Figure:
    """The writeup's full_result, one panel per model (label -> per-seed histories): training (running, on
    augmented images), validation and test accuracy, mean over seeds with a min–max band. The y-range starts
    at the lowest mean after the first tenth of the epochs (at least one), so the last tenths of a point show."""
    n = len(histories)
    fig, axes = plt.subplots(1, n, figsize=(2.05 * n + 0.4, 2.8), squeeze=False, layout="tight")
    for ax, (label, runs) in zip(axes[0], histories.items()):
        low_y = 100.0
        for split, (name, color, _) in SPLITS.items():
            mean = _band_line(ax, runs, f"{split}_acc", color, 0.15, linewidth=1.4, label=name)
            low_y = min(low_y, float(np.nanmin(mean[max(1, len(mean) // 10):] if len(mean) > 1 else mean)))
        ax.set_ylim(max(low_y - 0.3, 0), 100.05)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0, 0].set_ylabel("accuracy (%)", fontsize=9)
    axes[0, -1].legend(fontsize=9, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def lr_sweep_figure(rows: Mapping[str, Mapping[float, Sequence[float | None]]], path: str | Path | None = None,
                    title: str = "") -> plt.Figure:
    """Test accuracy against a constant learning rate (log scale), one line per variant (label ->
    {lr: per-seed accuracies}); seeds as dots, a failed or diverged run drawn at the bottom."""
    fig, ax = plt.subplots(figsize=(5.2, 2.4), layout="tight")
    for i, (label, by_lr) in enumerate(rows.items()):
        lrs = sorted(by_lr)
        learned = [[a for a in by_lr[lr] if a is not None and a >= stats.FAILED_BELOW] for lr in lrs]  # as the table
        ax.plot(lrs, [np.mean(accs) if accs else np.nan for accs in learned], marker="o", color=f"C{i}", label=label)
        ax.scatter([lr for lr in lrs for _ in by_lr[lr]], [0.0 if a is None else a for lr in lrs for a in by_lr[lr]],
                   s=12, color=f"C{i}", alpha=0.5)  # every seed, a failed one at 0
    ax.set_xscale("log")
    every_lr = sorted({lr for by_lr in rows.values() for lr in by_lr})
    ax.set_xticks(every_lr, [f"{lr:g}" for lr in every_lr])
    ax.set_xlabel("constant learning rate (SGD, momentum 0.9)", fontsize=9)
    ax.set_ylabel("test accuracy (%)", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8.5)
    return save(fig, path)


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
    fig, ax = plt.subplots(figsize=(7.5, 6.2), layout="tight")
    sns.heatmap(matrix, mask=np.eye(len(matrix), dtype=bool), annot=True, fmt="d", annot_kws={"fontsize": 7.5}, ax=ax,
                cmap="Reds", cbar_kws={"label": "errors (off-diagonal)"}, linewidths=0.4, linecolor="#eeeeee",
                xticklabels=class_names, yticklabels=[f"{c} ({a:.1f}%)" for c, a in zip(class_names, per_class)])
    for i in range(len(matrix)):  # the diagonal, grey
        ax.add_patch(Rectangle((i, i), 1, 1, facecolor="#e8e8e8", edgecolor="white", zorder=0.5))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (per-class accuracy)")
    ax.set_title(title or "confusion matrix (test set)", fontsize=11)
    plt.setp(ax.get_xticklabels(), rotation=45 if max(len(c) for c in class_names) > 2 else 0, ha="right")
    return save(fig, path)


def misclassified_figure(images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor,
                         class_names: Sequence[str], path: str | Path | None = None, title: str = "",
                         count: int = 32, per_row: int = 8) -> plt.Figure:
    """A torchvision make_grid gallery of the first ``count`` misclassified images (pixels in
    [0, 1]), each captioned 'true → predicted'."""
    from torchvision.utils import make_grid
    wrong = (predictions != labels).nonzero().flatten()[:count]
    fig, ax = plt.subplots(figsize=(per_row * 1.15, max(1, math.ceil(len(wrong) / per_row)) * 1.35 + 0.6),
                           layout="tight")
    ax.axis("off")
    if len(wrong) == 0:
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
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
    total = int((predictions != labels).sum())
    ax.set_title(title or f"misclassified test images (first {len(wrong)} of {total:,}; true→predicted)", fontsize=10)
    return save(fig, path)


def mean_std_figure(rows: Sequence[Mapping[str, Any]], path: str | Path | None = None, title: str = "",
                    group_key: str = "recipe") -> plt.Figure:
    """Test accuracy, mean ± std per row (dicts with ``label``, ``values`` (per seed) and ``group_key``),
    one marker colour per group, the seeds as dots: the ablation and dataset charts."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    groups = list(dict.fromkeys(r[group_key] for r in rows))
    fig, ax = plt.subplots(figsize=(6.8, 0.3 * len(labels) * max(1, len(groups) * 0.7) + 0.9), layout="tight")
    height = 0.7 / len(groups)

    def y_of(row: Mapping[str, Any]) -> float:  # its label's line, each group a little offset
        return labels.index(row["label"]) + (groups.index(row[group_key]) - (len(groups) - 1) / 2) * height

    for g, group in enumerate(groups):
        for k, r in enumerate(r for r in rows if r[group_key] == group):
            y, values = y_of(r), list(r["values"])
            mean, std = stats.mean_std(values)
            ax.errorbar(mean, y, xerr=std or 0.0, fmt="o", color=f"C{g}", capsize=4, label=None if k else str(group))
            ax.scatter(values, [y] * len(values), s=12, color=f"C{g}", alpha=0.45, zorder=3)
            ax.annotate(f"{mean:.2f}", (mean, y), xytext=(0, 5), textcoords="offset points", ha="center", fontsize=9)
    ax.set_yticks(range(len(labels)), labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.12)
    low, high = ax.get_xlim()
    ax.set_xlim(max(low, 0.0), min(high, 100.5))  # accuracies: a wide error bar is cut at the scale's ends
    # A run that did not learn (near chance) would squash every real difference into one pixel:
    # scale to the runs that learned and say in words what lies off the left edge.
    learned = [v for r in rows for v in r["values"] if v >= stats.FAILED_BELOW]
    failed = [(r, v) for r in rows for v in r["values"] if v < stats.FAILED_BELOW]
    if failed and learned:
        spread = max(learned) - min(learned) + 0.4
        left = min(learned) - 0.25 * spread
        ax.set_xlim(left, min(max(learned) + 0.15 * spread, 100.5))
        for r, v in failed:
            ax.annotate(f"◄ a seed at {v:.1f}% (did not learn); mean off scale", (left, y_of(r)), xytext=(4, -9),
                        textcoords="offset points", fontsize=9, color="0.3")
    if groups != [""]:  # one unnamed group: no legend
        ax.legend(fontsize=9, loc="best")
    ax.set_title(title, fontsize=10)
    return save(fig, path)
