"""The architecture diagram of a model, computed from the model itself: a torch.fx trace gives
the stages (layer, activation, pooling) and a forward pass of a dummy batch gives each tensor's
shape, so the picture cannot drift from the code."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, Rectangle
from torch import nn
from torch.fx import symbolic_trace
from torch.fx.passes.shape_prop import ShapeProp

from mnist_lib.models import ARCHITECTURES
from mnist_lib.registry import MODELS
from mnist_lib.plots import save


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
        if isinstance(module, nn.Conv2d):
            k = "×".join(map(str, module.kernel_size))
            pad = f", pad {module.padding[0]}" if any(module.padding) else ""
            return f"{node.target}: conv {k}{pad}\n{module.out_channels} maps", True, params
        if isinstance(module, nn.Linear):
            return f"{node.target}: linear {module.in_features}→{module.out_features}", True, params
        if isinstance(module, nn.BatchNorm2d):
            return "BatchNorm", False, params
        if isinstance(module, nn.Dropout):
            return f"Dropout({module.p:g})", False, params
        if isinstance(module, nn.Identity):
            return "", False, 0
        return type(module).__name__, True, params
    target = getattr(node.target, "__name__", str(node.target))
    if target == "max_pool2d":
        k = node.args[1] if len(node.args) > 1 else node.kwargs.get("kernel_size")
        return f"max-pool {k}×{k}", True, 0
    if target in ("relu", "relu_"):
        return "ReLU", False, 0
    if target == "flatten":
        return "flatten", True, 0
    return target, False, 0


def trace_stages(model: nn.Module, input_shape: Sequence[int] = (1, 1, 28, 28)) -> tuple[tuple[int, ...], list[Stage]]:
    """The input shape and ``model``'s stages, each with the shape it produces (batch dimension dropped), from
    torch.fx shape propagation of a dummy input: each layer (conv, linear, pooling, flatten) opens a stage and
    the shape-keeping operations after it (BatchNorm, ReLU, Dropout) join it."""
    graph = symbolic_trace(copy.deepcopy(model).eval())  # a copy: the model's mode and BatchNorm statistics stay
    ShapeProp(graph).propagate(torch.zeros(*input_shape))
    modules = dict(graph.named_modules())
    stages: list[Stage] = []
    for node in graph.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        label, opens, params = _describe(node, modules)
        if opens or not stages:
            stages.append(Stage())
        stage = stages[-1]
        if label and stage.ops and stage.ops[-1] == label:  # the same op twice in a row (two Dropouts): once, counted
            stage.ops[-1] = label + " ×2"
        elif label:
            stage.ops.append(label)
        stage.params += params
        stage.shape = tuple(node.meta["tensor_meta"].shape[1:])
    return tuple(input_shape[1:]), stages


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}@{shape[1]}×{shape[2]}" if len(shape) == 3 else "×".join(map(str, shape))


def _tensor_extent(shape: tuple[int, ...], max_side: float = 1.3) -> tuple[float, float, float]:
    """(left, right, top) of a drawn tensor relative to its centre: a stack of feature maps (side
    ∝ height, at most 6 drawn, each offset up and right) or a bar (height ∝ log of the width)."""
    if len(shape) == 3:
        side = max(0.25, max_side * shape[1] / 28)
        spread = (min(shape[0], 6) - 1) * 0.08
        return side / 2, side / 2 + spread, side / 2 + spread
    height = max(0.25, max_side * math.log2(max(shape[-1], 2)) / math.log2(784))
    return 0.09, 0.09, height / 2


def _draw_tensor(ax: plt.Axes, x: float, y: float, shape: tuple[int, ...], color: str) -> None:
    """A tensor as the classic LeNet picture, centred at (x, y) (sizes: `_tensor_extent`)."""
    maps = len(shape) == 3
    half, _, top = _tensor_extent(shape)
    h, layers = (half, min(shape[0], 6)) if maps else (top, 1)
    for i in range(layers):
        offset = (layers - 1 - i) * 0.08
        ax.add_patch(Rectangle((x - half + offset, y - h + offset), 2 * half, 2 * h, facecolor=color,
                               edgecolor="black", linewidth=0.8, alpha=0.95 if maps else None))


def _stage_lines(stage: Stage) -> list[str]:
    """The label of one arrow: the layer's name, its operations, its parameter count."""
    ops = [op.split(": ", 1) for op in stage.ops]
    head = ops[0][0] if len(ops[0]) == 2 else ""
    lines = ([head] if head else []) + [line for o in ops for line in o[-1].split("\n")]
    return lines + ([f"{stage.params:,} params"] if stage.params else [])


INCHES_PER_UNIT, LABEL_PT = 0.30, 9.5  # drawing units; labels: 8 pt and more once the report fits the page width

def _rows(shapes: list[tuple[int, ...]], per_row: int = 5) -> list[list[int]]:
    """Tensor indices per diagram row: one row when short, else break where the network
    flattens (convolutional part, then the fully connected part) or in the middle."""
    n = len(shapes)
    if n <= per_row:
        return [list(range(n))]
    flat = next((i for i in range(1, n) if len(shapes[i]) == 1 and len(shapes[i - 1]) == 3), None)
    cut = flat if flat is not None and 2 <= flat <= n - 2 and max(flat, n - flat) <= per_row + 1 else (n + 1) // 2
    return [list(range(cut)), list(range(cut, n))]


def _draw_network(ax: plt.Axes, shapes: list[tuple[int, ...]], labels: list[list[str]]) -> tuple[float, float]:
    """The tensors left to right, each with its shape above it, and one arrow per layer with its label box
    (``labels[i]``: the arrow into tensor i + 1) under it; a long network wraps onto a second row (`_rows`), so
    it stays legible at page width. Fits the axes to the drawing; returns its width and height."""
    u, em = 0.62 / INCHES_PER_UNIT, LABEL_PT / 72 / INCHES_PER_UNIT  # u: the vertical spaces' first scale (0.62 in)
    line_h = 1.56 * em  # one label line (linespacing 1.3); an arrow is as long as its label box is wide
    gap = [max(1.8, 0.68 * em * max(map(len, lines)) + 0.7) for lines in labels]
    extents = [_tensor_extent(shape) for shape in shapes]
    arrow = dict(color="#444444", linewidth=1.1)
    last = len(shapes) - 1
    x = y = right = bottom = 0.0
    for r, row in enumerate(_rows(shapes)):
        top = max(extents[i][2] for i in row)  # the row's tallest tensor
        label_y = -(top + 0.5 * u)  # the top of its label boxes, below its centre line
        if r == 0:
            top_edge = top + 0.55 * u
        else:  # a wrapped row, below the previous one: its first arrow comes down from that row's end
            sx, sy = x + extents[row[0] - 1][1] + 0.08, y
            x, y = gap[row[0] - 1] + extents[row[0]][0], bottom - 0.5 * u - top
            turn_x, mid_y = sx + 0.45, bottom - 0.2 * u
            ax.plot([sx, turn_x, turn_x, 0.15, 0.15], [sy, sy, mid_y, mid_y, y], **arrow)
        for k, i in enumerate(row):
            start = x + extents[i - 1][1] + 0.08 if k else 0.15  # a wrapped row's first arrow: from the left
            if k:
                x += extents[i - 1][1] + gap[i - 1] + extents[i][0]
            color = "#d9d9d9" if i == 0 else "#a1d99b" if i == last else "#9ecae1" if len(shapes[i]) == 3 else "#fdd0a2"
            _draw_tensor(ax, x, y, shapes[i], color)
            ax.text(x, y + top + 0.1 * u, _shape_text(shapes[i]), ha="center", va="bottom", fontsize=10,
                    fontweight="bold")
            if i in (0, last):
                ax.text(x, y - extents[i][2] - 0.1 * u, "logits" if i else "input", ha="center", va="top",
                        fontsize=LABEL_PT)
            if i:
                end = x - extents[i][0] - 0.08
                ax.add_patch(FancyArrowPatch((start, y), (end, y), arrowstyle="-|>", mutation_scale=13, **arrow))
                ax.text((start + end) / 2, y + label_y, "\n".join(labels[i - 1]), ha="center", va="top",
                        fontsize=LABEL_PT, linespacing=1.3,
                        bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#bbbbbb", linewidth=0.6))
        depth = max((len(labels[i - 1]) for i in row if i), default=0)  # the longest label's lines
        bottom = y + label_y - line_h * depth - 0.25 * u
        right = max(right, x + extents[row[-1]][1])
    width = right + 0.9
    ax.set_xlim(-extents[0][0] - 0.3, width - 0.3)
    ax.set_ylim(bottom, top_edge)
    ax.set_aspect("equal")
    ax.axis("off")
    return width, top_edge - bottom


def architecture_figure(model: nn.Module, path: str | Path | None = None, title: str | None = None) -> plt.Figure:
    """The model's layer diagram (`trace_stages`, drawn by `_draw_network`), titled by default with the model's
    display name and parameter count."""
    input_dims, stages = trace_stages(model)
    fig, ax = plt.subplots()
    width, height = _draw_network(ax, [input_dims] + [s.shape for s in stages], [_stage_lines(s) for s in stages])
    fig.set_size_inches(width * INCHES_PER_UNIT, height * INCHES_PER_UNIT + 0.35)
    total = sum(p.numel() for p in model.parameters())
    name = next((MODELS[k] for k, cls in ARCHITECTURES.items() if type(model) is cls), type(model).__name__)
    ax.set_title(title or f"{name}: {total:,} parameters", fontsize=12)
    return save(fig, path)
