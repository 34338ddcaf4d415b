"""What the notebooks share, so they stay narrative: checking their papermill parameters through
the one TrainConfig, where their figures go, and the per-model analysis (predictions of the
kept models, per-class accuracy, computed sentences).

A bad parameter raises MnistLibError with the config's own message (the CLI prints the same
one), so papermill names the cell and the message says which parameter and why.
"""

from __future__ import annotations

import ast
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display
from tqdm.auto import tqdm

from mnist_lib import diagram, plots
from mnist_lib.analysis import conv1_figure, recorded_predictions, recorded_shift_table, shift_figure
from mnist_lib.config import DATASET_LABELS, DATASETS, PRESETS, TrainConfig, choice, variant_config
from mnist_lib.data import DEBIAN_FASHION_MNIST, IDX_FILES, TORCHVISION_CLASSES, load_data, load_idx, resolve_data_dir
from mnist_lib.errors import MnistLibError
from mnist_lib.experiments import aggregate, run_dir, run_seeds
from mnist_lib.files import ensure_writable_dir
from mnist_lib.models import build_model, count_parameters, parameter_frame
from mnist_lib.registry import DEFAULT_RECIPE, HEADLINE, MODELS, VARIANTS, label, summary_key
from mnist_lib.tables import display_name, histories, markdown_table, pm_values, seconds_text

# TrainConfig fields a notebook may expose as parameters (None there: the recipe's value).
CONFIG_PARAMETERS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule",
                     "augment", "label_smoothing", "data_dir", "device", "limit", "val_size", "threads")


def parse_seeds(seeds: Any) -> list[int]:
    """Seeds as a list of distinct integers. Also takes one integer, or the text papermill's
    ``-p seeds "[0, 1]"`` or ``-p seeds 0,1`` passes."""
    value = seeds
    if isinstance(value, str):
        text = value.strip()
        try:
            value = ast.literal_eval(text if text.startswith("[") or "," not in text else f"[{text}]")
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


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise MnistLibError(f"{name} must be True or False, got {value!r}")
    return value


def figure_dir(images_dir: str | Path, dataset: str) -> Path:
    """MNIST figures in images_dir; another dataset's in images_dir/<dataset>, so they never
    overwrite the MNIST ones."""
    return Path(images_dir) if dataset == "mnist" else Path(images_dir) / dataset


@dataclass
class NotebookRun:
    """One variant under one recipe over seeds, checked: what run_seeds and the figures need."""
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
        """images/<variant><suffix>.png (images/<dataset>/... off MNIST)."""
        return self.images_dir / f"{self.variant}{suffix}.png"

    def run_dirs(self) -> list[Path]:
        return [run_dir(self.runs_dir, self.dataset, self.recipe, self.variant, s) for s in self.seeds]

    def run(self, data=None) -> list[dict[str, Any]]:
        """Train (or reuse) every seed; the metrics of each, in seed order."""
        return run_seeds(self.variant, self.seeds, self.runs_dir, self.recipe, data=data,
                         retrain=self.retrain, **self.overrides)

    def load_data(self):
        c = self.config
        return load_data(c.dataset, c.data_dir, c.data_format, c.val_size, c.limit, c.download)

    # What a model notebook shows, one call per section: the narrative stays in the notebook.
    def describe(self) -> None:
        display(Markdown(describe_run(self)))

    def show_architecture(self):
        """The diagram drawn from the model (shapes from a forward pass) and its per-layer
        parameter table; returns the model."""
        net = build_model(self.config.model, self.config.batchnorm, self.config.dropout)
        diagram.architecture_figure(net, self.figure(), title=f"{self.name}: {count_parameters(net):,} parameters")
        plt.show()
        display(Markdown(parameter_markdown(net, self.name)))
        return net

    def show_curves(self, metrics: list[dict[str, Any]]) -> None:
        plots.curves_figure([m["history"] for m in metrics], self.figure("_result"),
                            title=f"{self.name} on {DATASET_LABELS[self.dataset]}",
                            selected_epochs=[m["selected_epoch"] for m in metrics])
        plt.show()

    def show_errors(self, metrics: list[dict[str, Any]], data=None):
        """The test confusion matrix summed over seeds, the per-class table and the first seed's
        misclassified digits, all from the runs' records; returns the per-class frame."""
        data = data or self.load_data()
        labels = data.test.labels.cpu()
        predictions = {m["config"]["seed"]: recorded_predictions(m, labels) for m in metrics}
        matrix = sum(plots.confusion_matrix(labels, p) for p in predictions.values())
        title = f"{self.name} on {DATASET_LABELS[self.dataset]}"
        plots.confusion_figure(matrix, data.class_names, self.figure("_confusion"),
                               title=f"{title}: test confusion matrix, summed over {len(predictions)} seed(s)")
        plt.show()
        frame = per_class_frame(labels, predictions, data.class_names)
        display(Markdown(markdown_table(frame.drop(columns="mean"))))
        first = self.seeds[0]
        plots.misclassified_figure(data.unnormalize(data.test.stored.cpu()), labels, predictions[first],
                                   data.class_names, self.figure("_misclassified"),
                                   title=f"{self.name}, seed {first}: misclassified test images (true → predicted)")
        plt.show()
        return frame

    def show_conv1(self, metrics: list[dict[str, Any]], data=None) -> None:
        """The first seed's conv1 filters and their feature maps of the first test digit."""
        data = data or self.load_data()
        conv1_figure(metrics[0]["analysis"]["conv1"], data.test.images[0], self.figure("_conv1"),
                     title=f"{self.name}, seed {self.seeds[0]}: conv1 filters and feature maps",
                     label=data.class_names[int(data.test.labels[0])])
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

    def show_summary(self, metrics: list[dict[str, Any]], frame=None) -> None:
        display(Markdown(model_summary(self, metrics, frame)))


def config_fields(namespace: dict[str, Any]) -> dict[str, Any]:
    """A notebook's training parameters (CONFIG_PARAMETERS) from its globals()."""
    return {k: namespace[k] for k in CONFIG_PARAMETERS if k in namespace}


def check_parameters(model: str, recipe: str = "tuned", seeds: Any = (0, 1, 2), dataset: str = "mnist",
                     runs_dir: Any = "runs", images_dir: Any = "images", retrain: Any = False,
                     architecture: str | None = None, **config_fields: Any) -> NotebookRun:
    """Check a model notebook's parameters: ``model`` is a variant name (VARIANTS) whose
    architecture must be ``architecture`` (the notebook's own) when given; the config fields
    (None: the recipe's value) go through variant_config -> TrainConfig.validate."""
    unknown = sorted(set(config_fields) - set(CONFIG_PARAMETERS))
    if unknown:
        raise MnistLibError(f"unknown parameter(s) {', '.join(unknown)}: known are {', '.join(CONFIG_PARAMETERS)}")
    choice("model", model, list(VARIANTS))
    choice("recipe", recipe, list(PRESETS))
    choice("dataset", dataset, list(DATASETS))
    if architecture is not None and VARIANTS[model].model != architecture:
        arch = VARIANTS[model].model
        raise MnistLibError(f"model {model!r} is a {arch} variant, not {architecture}: run it with notebooks/{arch}.ipynb")
    seeds = parse_seeds(seeds)
    overrides = {k: v for k, v in config_fields.items() if v is not None}
    overrides["dataset"] = dataset
    config = variant_config(model, recipe, **overrides, seed=seeds[0])
    run = NotebookRun(model, recipe, seeds, config, overrides, _path("runs_dir", runs_dir),
                      figure_dir(_path("images_dir", images_dir), dataset), _flag("retrain", retrain))
    # Where the notebook writes and what it reads, before any training: the messages the CLI gives.
    ensure_writable_dir(run.runs_dir, "runs_dir")
    ensure_writable_dir(run.images_dir, "images_dir")
    check_data(config)
    return run


def check_data(config: TrainConfig) -> None:
    """Raise the loader's own MnistLibError (what the CLI prints) now if ``config``'s dataset
    cannot be loaded because its files are absent from the data folder (data_dir, else
    $MNIST_DATA_DIR, else ./data) and cannot be downloaded; absent files are downloaded here, as
    training would. Files that are there are checked when they are loaded."""
    if config.data_format != "idx":
        return  # the course's tars and folders are read (and their absence reported) by the loader
    root = resolve_data_dir(config.data_dir)
    raw = root / TORCHVISION_CLASSES[config.dataset] / "raw"
    if all((raw / name).is_file() for pair in IDX_FILES.values() for name in pair):
        return
    if config.dataset == "fashion-mnist" and DEBIAN_FASHION_MNIST.is_dir():
        return  # the loader stages the Debian package's files
    load_idx(config.dataset, root, True, config.download)  # downloads them, or raises the message


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


# --------------------------------------------------------------------------- per-model analysis

def per_class_frame(labels, predictions: dict[int, Any], class_names: Sequence[str]):
    """Per-class test accuracy, mean ± std over seeds, with the number of test images and
    the most frequent wrong answer (pooled over seeds)."""
    rows = []
    for c, name in enumerate(class_names):
        mask = labels == c
        accs = [100.0 * float((p[mask] == c).float().mean()) for p in predictions.values()]
        wrong = torch.cat([p[mask][p[mask] != c] for p in predictions.values()])
        confused = class_names[int(torch.bincount(wrong, minlength=len(class_names)).argmax())] if len(wrong) else "-"
        rows.append({"class": name, "test images": int(mask.sum()), "accuracy (%)": pm_values(accs),
                     "mean": statistics.fmean(accs), "most often taken for": confused})
    return pd.DataFrame(rows)


def model_summary(run: NotebookRun, metrics: list[dict[str, Any]], frame=None) -> str:
    """The computed closing paragraph of a model notebook (markdown)."""
    test = [m["final"]["test_acc"] for m in metrics]
    val = [m["final"]["val_acc"] for m in metrics if m["final"]["val_acc"] is not None]
    kept = [m["selected_epoch"] for m in metrics]
    seconds = [sum(e["seconds"] for e in m["history"]) for m in metrics]
    n = len(metrics)
    sizes = metrics[0]["sizes"]
    env = metrics[0]["environment"]
    seeds = ", ".join(str(s) for s in run.seeds)
    mean = statistics.fmean(test)
    lines = [
        f"**{run.name}** ({metrics[0]['params']:,} parameters), recipe `{run.recipe}`, "
        f"{run.config.epochs} epoch(s), {n} seed(s) ({seeds}), trained on {sizes['train']:,} "
        f"{run.dataset} images, {sizes['val']:,} held out for validation:",
        "",
        f"- test accuracy **{pm_values(test)}%** (mean{' ± std' if n > 1 else ''} over seeds), "
        f"i.e. a test error of {100 - mean:.2f}%;",
    ]
    if val:
        lines.append(f"- validation accuracy {pm_values(val)}%; the kept model is the best-validation epoch "
                     f"(epoch{'s' if n > 1 else ''} {', '.join(map(str, kept))} of {run.config.epochs}), "
                     f"chosen without looking at the test set;")
    if n > 1:
        lines.append(f"- the seeds span {min(test):.2f}–{max(test):.2f}% ({max(test) - min(test):.2f} points);")
    if frame is not None and len(frame):
        worst = frame.sort_values("mean").iloc[0]
        best = frame.sort_values("mean").iloc[-1]
        lines.append(f"- hardest class: {worst['class']} ({worst['mean']:.2f}%, most often taken for "
                     f"{worst['most often taken for']}); easiest: {best['class']} ({best['mean']:.2f}%);")
    lines.append(f"- training took {seconds_text(statistics.fmean(seconds))} per seed on {env['device']} "
                 f"({env['device_name']}, {env['threads']} threads).")
    return "\n".join(lines)


def describe_run(run: NotebookRun) -> str:
    """One markdown line: what this notebook trains, with the recipe's values spelled out."""
    c = run.config
    opt = (f"SGD, lr {c.lr:g}, momentum {c.momentum:g}{', Nesterov' if c.nesterov else ''}" if c.optimizer == "sgd"
           else f"AdamW, lr {c.lr:g}")
    schedule = {"none": "constant learning rate", "onecycle": "one-cycle schedule", "cosine": "cosine schedule"}[c.schedule]
    images = f"the first {c.limit:,} training images" if c.limit else "all remaining training images"
    return (f"**{run.name}** on {c.dataset}, recipe `{run.recipe}`: {c.epochs} epoch(s), batch {c.batch_size}, {opt}, "
            f"weight decay {c.weight_decay:g}, {schedule}, {'with' if c.augment else 'no'} augmentation; "
            f"seeds {', '.join(map(str, run.seeds))}; {c.val_size:,} training images held out for validation, "
            f"training on {images}; "
            f"device `{c.device}`; runs in `{run.runs_dir}`, figures in `{run.images_dir}`.")


def parameter_markdown(model, name: str) -> str:
    """The per-layer parameter table (models.parameter_frame) as markdown, with the total."""
    frame = parameter_frame_formatted(model)
    total = frame.iloc[-1]
    return (markdown_table(frame) + "\n\n" + f"Total parameters for {name}: {total['arithmetic']}."
            + ("\n\nBatchNorm has a learned scale (its weight) and shift (its bias) per channel."
               if (frame["kind"] == "BatchNorm2d").any() else ""))


def parameter_frame_formatted(model):
    frame = parameter_frame(model)
    for column in ("weights", "biases", "total"):
        frame[column] = frame[column].map("{:,}".format)
    return frame


def run_grid(runs: Sequence[NotebookRun], data=None) -> dict[str, dict[str, Any]]:
    """Train (or reuse) each run over its seeds, with a progress bar over the runs; the
    aggregates in the summary's shape: {dataset: {variant[@recipe]: entry}}."""
    summary: dict[str, dict[str, Any]] = {}
    for run in tqdm(runs, desc="variants × recipes", unit="run"):
        entry = aggregate(run.run(data))
        entry.update(variant=run.variant, recipe=run.recipe, label=label(run.variant))
        summary.setdefault(run.dataset, {})[summary_key(run.variant, run.recipe)] = entry
    return summary


def ablation_rows(summary: dict[str, Any], variants: Sequence[str], recipes: Sequence[str],
                  dataset: str = "mnist") -> list[dict[str, Any]]:
    """Rows for plots.mean_std_figure: one per variant and recipe with a run that did not diverge
    (a diverged run has no test accuracy; the tables count it)."""
    entries = summary.get(dataset, {})
    rows = [{"label": label(v), "values": [a for a in entries[summary_key(v, r)]["test_acc"] if a is not None],
             "recipe": r} for v in variants for r in recipes if summary_key(v, r) in entries]
    return [row for row in rows if row["values"]]


def compared_models(summary: dict[str, Any], dataset: str = "mnist") -> list[str]:
    """The three models, plus the best variant when it is another one (project recipe)."""
    entries = summary.get(dataset, {})
    keys = [k for k in HEADLINE if k in entries]
    best = summary.get("mnist", {}).get("best_variant", {}).get("variant")
    if best and best not in keys and best in entries:
        keys.append(best)
    return keys


def full_result_histories(summary: dict[str, Any], runs_dir: str | Path, dataset: str = "mnist") -> dict[str, list]:
    """label -> per-seed histories of the compared models, for plots.full_result_figure."""
    out = {}
    for key in compared_models(summary, dataset):
        entry = summary[dataset][key]
        runs = histories(runs_dir, dataset, DEFAULT_RECIPE, key, entry["seeds"])
        if runs:
            out[display_name(entry) if key == entry["variant"] and key in MODELS else entry["label"]] = runs
    return out


def dataset_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for plots.mean_std_figure comparing MNIST and Fashion-MNIST per model."""
    if "fashion-mnist" not in summary:
        return []
    rows = []
    for key in compared_models(summary, "fashion-mnist"):
        for dataset in ("mnist", "fashion-mnist"):
            entry = summary.get(dataset, {}).get(key)
            if entry:
                rows.append({"label": display_name(entry) if key in MODELS else entry["label"],
                             "values": entry["test_acc"], "dataset": dataset})
    return rows
