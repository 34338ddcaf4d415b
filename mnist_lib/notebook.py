"""What the model and ablation notebooks share, so they stay narrative: their papermill parameters checked through
the one TrainConfig (a bad one raises the CLI's own message), where their figures go, and each section's output."""

from __future__ import annotations

import ast
import functools
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from tqdm.auto import tqdm

from mnist_lib import diagram, plots
from mnist_lib.analysis import conv1_figure, recorded_predictions, recorded_shift_table, shift_figure
from mnist_lib.config import DATASET_LABELS, PRESETS, TrainConfig, choice, variant_config
from mnist_lib.data import idx_folder, load_config_data, resolve_data_dir
from mnist_lib.errors import MnistLibError
from mnist_lib.experiments import aggregate, run_seeds
from mnist_lib.files import ensure_writable_dir
from mnist_lib.models import build_model, count_parameters, parameter_frame
from mnist_lib.registry import MODELS, VARIANTS, label, summary_key
from mnist_lib.tables import markdown_table, pm_values, recipe_cells, seconds_text

# TrainConfig fields a notebook may expose as parameters (None there: the recipe's value).
CONFIG_PARAMETERS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule",
                     "augment", "label_smoothing", "data_dir", "device", "limit", "val_size", "threads")


def parse_seeds(seeds: Any) -> list[int]:
    """Distinct integer seeds from a list, one integer, or papermill's text (``-p seeds "[0, 1]"`` or ``0,1``)."""
    value = seeds
    if isinstance(value, str):
        text = value.strip()
        try:
            value = ast.literal_eval(text if text.startswith("[") else f"[{text}]")
        except (ValueError, SyntaxError):
            raise MnistLibError(f"seeds must be a list of integers such as [0, 1, 2], got {seeds!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or \
            any(isinstance(s, bool) or not isinstance(s, int) for s in value):
        raise MnistLibError(f"seeds must be a non-empty list of integers such as [0, 1, 2], got {seeds!r}")
    if len(set(value)) != len(value):
        raise MnistLibError(f"seeds must be distinct, got {list(value)}")
    return list(value)


def _path(name: str, value: Any) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise MnistLibError(f"{name} must be a folder path (text), got {value!r}")
    return Path(value)


@dataclass
class NotebookRun:
    """One variant under one recipe over seeds, checked; its methods are a model notebook's
    sections, one call each, so the narrative stays in the notebook."""
    variant: str
    recipe: str
    seeds: list[int]
    config: TrainConfig  # the first seed's full config
    overrides: dict[str, Any] = field(default_factory=dict)  # given on top of the recipe
    runs_dir: Path = Path("runs")
    images_dir: Path = Path("images")  # already per dataset
    retrain: bool = False

    @property
    def dataset(self) -> str:
        return self.config.dataset

    @property
    def name(self) -> str:
        """Display name: the architecture's, plus the variant when it differs."""
        arch = MODELS[self.config.model]
        return arch if self.variant == self.config.model else f"{arch} ({self.variant})"

    def figure(self, suffix: str = "") -> Path:
        """images_dir/<variant><suffix>.png (images_dir is already per dataset)."""
        return self.images_dir / f"{self.variant}{suffix}.png"

    @functools.cached_property
    def data(self):
        """The data splits, loaded once: training, the errors and conv1 sections share them."""
        return load_config_data(self.config)

    def run(self, data=None) -> list[dict[str, Any]]:
        """Train (or reuse) every seed, on ``data`` (default: this run's); the metrics of each, in seed order."""
        return run_seeds(self.variant, self.seeds, self.runs_dir, self.recipe, data=data or self.data,
                         retrain=self.retrain, **self.overrides)

    def describe(self) -> None:
        """One markdown line: what this notebook trains, with the recipe's values spelled out."""
        c = self.config
        recipe = "; ".join(f"{k} {v}" for k, v in recipe_cells(c).items() if v != "-")
        images = f"the first {c.limit:,} training images" if c.limit else "all remaining training images"
        display(Markdown(
            f"**{self.name}** on {c.dataset}, recipe `{self.recipe}`: {c.epochs} epoch(s); {recipe}; "
            f"seeds {', '.join(map(str, self.seeds))}; "
            f"{c.val_size:,} training images held out for validation, training on {images}; "
            f"device `{c.device}`; runs in `{self.runs_dir}`, figures in `{self.images_dir}`."))

    def show_architecture(self):
        """The model's diagram (shapes from a forward pass) and per-layer parameter table; returns the model."""
        net = build_model(self.config.model, self.config.batchnorm, self.config.dropout)
        diagram.architecture_figure(net, self.figure(), title=f"{self.name}: {count_parameters(net):,} parameters")
        plt.show()
        frame = parameter_frame(net)
        for column in ("weights", "biases", "total"):
            frame[column] = frame[column].map("{:,}".format)
        batchnorm = ("\n\nBatchNorm has a learned scale (its weight) and shift (its bias) per channel."
                     if (frame["kind"] == "BatchNorm2d").any() else "")
        display(Markdown(f"{markdown_table(frame)}\n\nTotal parameters for {self.name}: "
                         f"{frame.iloc[-1]['arithmetic']}.{batchnorm}"))
        return net

    def show_curves(self, metrics: list[dict[str, Any]]) -> None:
        plots.curves_figure([m["history"] for m in metrics], self.figure("_result"),
                            title=f"{self.name} on {DATASET_LABELS[self.dataset]}",
                            selected_epochs=[m["selected_epoch"] for m in metrics])
        plt.show()

    def show_errors(self, metrics: list[dict[str, Any]]):
        """The test confusion matrix summed over seeds, the per-class table and the first seed's
        misclassified digits, all from the runs' records; returns the per-class frame."""
        data = self.data
        labels = data.test.labels.cpu()
        predictions = {m["config"]["seed"]: recorded_predictions(m, labels) for m in metrics}
        matrices = [plots.confusion_matrix(labels, p) for p in predictions.values()]
        plots.confusion_figure(sum(matrices), data.class_names, self.figure("_confusion"),
                               title=f"{self.name} on {DATASET_LABELS[self.dataset]}: test confusion matrix, "
                                     f"summed over {len(predictions)} seed(s)")
        plt.show()
        frame = per_class_frame(matrices, data.class_names)
        display(Markdown(markdown_table(frame.drop(columns="mean"))))
        first = self.seeds[0]
        plots.misclassified_figure(data.unnormalize(data.test.stored.cpu()), labels, predictions[first],
                                   data.class_names, self.figure("_misclassified"),
                                   title=f"{self.name}, seed {first}: misclassified test images (true → predicted)")
        plt.show()
        return frame

    def show_conv1(self, metrics: list[dict[str, Any]]) -> None:
        """The first seed's conv1 filters and their feature maps of the first test digit."""
        conv1_figure(metrics[0]["analysis"]["conv1"], self.data.test.images[0], self.figure("_conv1"),
                     title=f"{self.name}, seed {self.seeds[0]}: conv1 filters and feature maps",
                     label=self.data.class_names[int(self.data.test.labels[0])])
        plt.show()

    def show_shifts(self, metrics: list[dict[str, Any]]) -> None:
        """Test accuracy on shifted test images, mean over seeds (recorded for MNIST runs)."""
        table = recorded_shift_table({self.name: metrics})
        if table.empty:
            display(Markdown("*No shift accuracies recorded for these runs (they are measured on MNIST).*"))
            return
        shift_figure(table, self.figure("_shifts"))
        plt.show()
        display(Markdown(markdown_table(table.map(lambda v: f"{v:.2f}").rename(columns=lambda c: f"{c} px"))))

    def show_summary(self, metrics: list[dict[str, Any]], frame) -> None:
        """The computed closing paragraph; ``frame``: show_errors' per-class frame."""
        test = [m["final"]["test_acc"] for m in metrics]
        val = [m["final"]["val_acc"] for m in metrics if m["final"]["val_acc"] is not None]
        n, sizes, env, epochs = len(metrics), metrics[0]["sizes"], metrics[0]["environment"], self.config.epochs
        lines = [
            f"**{self.name}** ({metrics[0]['params']:,} parameters), recipe `{self.recipe}`, {epochs} epoch(s), "
            f"{n} seed(s) ({', '.join(map(str, self.seeds))}), trained on {sizes['train']:,} {self.dataset} images, "
            f"{sizes['val']:,} held out for validation:",
            "",
            f"- test accuracy **{pm_values(test)}%** (mean{' ± std' if n > 1 else ''} over seeds), "
            f"i.e. a test error of {100 - statistics.fmean(test):.2f}%;",
        ]
        if val:
            kept = ", ".join(str(m["selected_epoch"]) for m in metrics)
            lines.append(f"- validation accuracy {pm_values(val)}%; the kept model is the best-validation epoch "
                         f"(epoch{'s' if n > 1 else ''} {kept} of {epochs}), chosen without looking at the test set;")
        if n > 1:
            lines.append(f"- the seeds span {min(test):.2f}–{max(test):.2f}% ({max(test) - min(test):.2f} points);")
        worst, best = frame.sort_values("mean").iloc[[0, -1]].to_dict("records")
        lines.append(f"- hardest class: {worst['class']} ({worst['mean']:.2f}%, most often taken for "
                     f"{worst['most often taken for']}); easiest: {best['class']} ({best['mean']:.2f}%);")
        seconds = statistics.fmean(sum(e["seconds"] for e in m["history"]) for m in metrics)
        lines.append(f"- training took {seconds_text(seconds)} per seed on {env['device']} "
                     f"({env['device_name']}, {env['threads']} threads).")
        display(Markdown("\n".join(lines)))


def config_fields(namespace: dict[str, Any]) -> dict[str, Any]:
    """A notebook's training parameters (CONFIG_PARAMETERS) from its globals()."""
    return {k: namespace[k] for k in CONFIG_PARAMETERS if k in namespace}


def check_parameters(model: str, recipe: str = "tuned", seeds: Any = (0, 1, 2), dataset: str = "mnist",
                     runs_dir: Any = "runs", images_dir: Any = "images", retrain: Any = False,
                     architecture: str | None = None, **config_fields: Any) -> NotebookRun:
    """Check a model notebook's parameters: ``model`` is a variant of ``architecture`` (the notebook's own)
    when given; the config fields (None: the recipe's value) go through variant_config -> TrainConfig.validate."""
    if unknown := sorted(set(config_fields) - set(CONFIG_PARAMETERS)):
        raise MnistLibError(f"unknown parameter(s) {', '.join(unknown)}: known are {', '.join(CONFIG_PARAMETERS)}")
    choice("model", model, list(VARIANTS))  # variant_config checks the recipe
    arch = VARIANTS[model].model
    if architecture is not None and arch != architecture:
        raise MnistLibError(f"model {model!r} is a {arch} variant, not {architecture}: "
                            f"run it with notebooks/{arch}.ipynb")
    seeds = parse_seeds(seeds)
    overrides = {k: v for k, v in config_fields.items() if v is not None} | {"dataset": dataset}
    config = variant_config(model, recipe, **overrides, seed=seeds[0])
    runs, images = _path("runs_dir", runs_dir), _path("images_dir", images_dir)
    if not isinstance(retrain, bool):
        raise MnistLibError(f"retrain must be True or False, got {retrain!r}")
    # another dataset's figures go to images/<dataset>, so they never overwrite MNIST's
    run = NotebookRun(model, recipe, seeds, config, overrides, runs, images if dataset == "mnist" else images / dataset,
                      retrain)
    # Where the notebook writes and what it reads, before any training: the messages the CLI gives.
    ensure_writable_dir(run.runs_dir, "runs_dir")
    ensure_writable_dir(run.images_dir, "images_dir")
    if config.data_format == "idx":  # absent IDX files are staged or downloaded now; the loader checks tars
        idx_folder(config.dataset, resolve_data_dir(config.data_dir), config.download)
    return run


def check_grid(variants: Any, recipes: Any, **common: Any) -> list[NotebookRun]:
    """Every variant x recipe checked (the ablation notebook): a list of NotebookRuns."""
    def names(name: str, value: Any, choices: Sequence[str]) -> list[str]:
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").replace("'", "").replace('"', "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not value:
            raise MnistLibError(f"{name} must be a non-empty list, got {value!r}")
        for v in value:
            choice(name[:-1], v, choices)
        return list(dict.fromkeys(value))

    return [check_parameters(v, r, **common) for r in names("recipes", recipes, list(PRESETS))
            for v in names("variants", variants, list(VARIANTS))]


def check_report_parameters(runs_dir: Any = "runs", images_dir: Any = "images",
                            summary_path: Any = "report/summary.json") -> tuple[Path, Path, Path]:
    """The comparison and report notebooks' parameters: their folders."""
    return _path("runs_dir", runs_dir), _path("images_dir", images_dir), _path("summary_path", summary_path)


def per_class_frame(matrices: Sequence[np.ndarray], class_names: Sequence[str]):
    """Per class, from each seed's confusion matrix: test images, accuracy (mean ± std over seeds), most frequent
    wrong answer (pooled)."""
    accs = [100.0 * m.diagonal() / m.sum(axis=1) for m in matrices]
    errors = sum(matrices) * (1 - np.eye(len(class_names), dtype=int))  # the off-diagonal counts
    return pd.DataFrame({"class": class_names, "test images": matrices[0].sum(axis=1),
                         "accuracy (%)": [pm_values(a) for a in zip(*accs)], "mean": np.mean(accs, axis=0),
                         "most often taken for": [class_names[e.argmax()] if e.any() else "-" for e in errors]})


def run_grid(runs: Sequence[NotebookRun]) -> dict[str, dict[str, Any]]:
    """Train (or reuse) each run on the first one's data (a grid shares it), with a progress bar; the rows as
    the summary's {dataset: {key: entry}}."""
    summary: dict[str, dict[str, Any]] = {}
    for run in tqdm(runs, desc="variants × recipes", unit="run"):
        entry = aggregate(run.run(runs[0].data))
        entry.update(variant=run.variant, recipe=run.recipe, label=label(run.variant))
        summary.setdefault(run.dataset, {})[summary_key(run.variant, run.recipe)] = entry
    return summary
