"""Named variants, multi-seed runs and the summary the comparison and the report read.

A run folder is ``<runs>/<dataset>/<recipe>/<variant>/seed<S>/`` (metrics.json, model.pt).
The seed models are variants too, so the regularization ablation and the model notebooks share
runs instead of training the same configuration twice.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Iterable

from mnist_lib.config import PRESETS, TrainConfig
from mnist_lib.data import DataSplits, load_data
from mnist_lib.errors import MnistLibError
from mnist_lib.files import read_json, write_json
from mnist_lib.train import METRICS, load_model, train

# Everything a variant changes on top of a recipe (PRESETS). All stay at most 62k parameters.
VARIANTS: dict[str, dict[str, Any]] = {
    # the writeup's three models, under whatever the recipe says
    "lenet5": dict(model="lenet5"),
    "custom_mlp": dict(model="custom_mlp"),
    "lenet5_regularized": dict(model="lenet5_regularized"),
    # a candidate for the best variant: BatchNorm without Dropout (Dropout may not help a
    # 62k-parameter net that augmentation already regularizes)
    "lenet5_batchnorm": dict(model="lenet5", batchnorm=True),
    # the regularization ablation: every regularizer set explicitly, so a row means the same
    # thing under either recipe; one regularizer is added per row
    "ablation_none": dict(model="lenet5", weight_decay=0.0, augment=False),
    "ablation_batchnorm": dict(model="lenet5", batchnorm=True, weight_decay=0.0, augment=False),
    "ablation_dropout": dict(model="lenet5", dropout=0.2, weight_decay=0.0, augment=False),
    "ablation_batchnorm_dropout": dict(model="lenet5_regularized", weight_decay=0.0, augment=False),
    "ablation_weight_decay": dict(model="lenet5_regularized", weight_decay=5e-4, augment=False),
    "ablation_augmentation": dict(model="lenet5_regularized", weight_decay=5e-4, augment=True),
}
SEED_MODELS = ["lenet5", "custom_mlp", "lenet5_regularized"]
# Variants the best variant is chosen from (by validation accuracy): the full-budget runs.
BEST_CANDIDATES = ["lenet5", "lenet5_regularized", "lenet5_batchnorm", "custom_mlp"]
ABLATION = ["ablation_none", "ablation_batchnorm", "ablation_dropout", "ablation_batchnorm_dropout",
            "ablation_weight_decay", "ablation_augmentation"]
LABELS = {
    "lenet5": "LeNet-5",
    "custom_mlp": "CustomMLP",
    "lenet5_regularized": "LeNet5_Regularized",
    "lenet5_batchnorm": "LeNet-5 + BatchNorm (no Dropout)",
    "ablation_none": "none",
    "ablation_batchnorm": "BatchNorm only",
    "ablation_dropout": "Dropout only",
    "ablation_batchnorm_dropout": "BatchNorm + Dropout (the writeup's model)",
    "ablation_weight_decay": "BatchNorm + Dropout + weight decay",
    "ablation_augmentation": "BatchNorm + Dropout + weight decay + augmentation",
}
DEFAULT_RECIPE = "tuned"
# Fields that say how a run was executed, not what was trained: a run is reusable across them.
EXECUTION_FIELDS = {"progress", "device", "threads", "data_dir", "download", "eval_batch_size"}


def variant_config(variant: str, recipe: str = DEFAULT_RECIPE, **overrides: Any) -> TrainConfig:
    """The TrainConfig of a named variant under a named recipe; ``None`` overrides are ignored,
    so a notebook parameter left at None means "the recipe's value"."""
    if variant not in VARIANTS:
        raise MnistLibError(f"variant {variant!r} is unknown: choose one of {', '.join(VARIANTS)}")
    if recipe not in PRESETS:
        raise MnistLibError(f"recipe {recipe!r} is unknown: choose one of {', '.join(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return TrainConfig.from_dict({**PRESETS[recipe], **VARIANTS[variant], **given})


def run_dir(runs: str | Path, dataset: str, recipe: str, variant: str, seed: int) -> Path:
    return Path(runs) / dataset / recipe / variant / f"seed{seed}"


def _same_training(saved: dict[str, Any], config: TrainConfig) -> bool:
    wanted = config.to_dict()
    return all(saved.get(k) == v for k, v in wanted.items() if k not in EXECUTION_FIELDS)


def run_seeds(variant: str, seeds: Iterable[int], runs: str | Path = "runs", recipe: str = DEFAULT_RECIPE,
              data: DataSplits | None = None, retrain: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """Train ``variant`` once per seed (or reuse a finished run with the same training config)
    and return the metrics of each seed, in order."""
    seeds = list(seeds)
    if not seeds:
        raise MnistLibError("seeds is empty: give at least one seed, e.g. [0, 1, 2]")
    config = variant_config(variant, recipe, **overrides)
    results = []
    for seed in seeds:
        seeded = config.replace(seed=seed)
        out = run_dir(runs, seeded.dataset, recipe, variant, seed)
        # Reuse needs the model too: committed metrics.json files come without their model.pt.
        if not retrain and (out / METRICS).exists() and (out / "model.pt").exists():
            saved = read_json(out / METRICS)
            if _same_training(saved["config"], seeded):
                print(f"{variant} seed {seed}: reusing the finished run in {out}")
                results.append(saved)
                continue
        if data is None:
            data = load_data(config.dataset, config.data_dir, config.data_format, config.val_size,
                             config.limit, config.download)
        results.append(train(seeded, out, data=data, overwrite=True).metrics)
    return results


def load_run(path: str | Path) -> tuple[dict[str, Any], Any]:
    """(metrics, kept model on the CPU) of a finished run folder."""
    metrics = read_json(Path(path) / METRICS)
    config = TrainConfig.from_dict({**metrics["config"], "progress": False})
    return metrics, load_model(Path(path) / "model.pt", config).eval()


def aggregate(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of the kept models' numbers, per-seed values kept."""
    test = [m["final"]["test_acc"] for m in metrics]
    val = [m["final"]["val_acc"] for m in metrics]
    return {
        "test_acc": test,
        "mean": statistics.fmean(test),
        "std": statistics.stdev(test) if len(test) > 1 else 0.0,
        "seeds": [m["config"]["seed"] for m in metrics],
        "val_acc": val,
        "val_mean": statistics.fmean(v for v in val if v is not None) if all(v is not None for v in val) else None,
        "test_loss": [m["final"]["test_loss"] for m in metrics],
        "selected_epoch": [m["selected_epoch"] for m in metrics],
        "epochs": metrics[0]["config"]["epochs"],
        "train_images": metrics[0].get("sizes", {}).get("train"),
        "params": metrics[0]["params"],
        "seconds": sum(sum(e["seconds"] for e in m["history"]) for m in metrics),
        "train_seconds": sum(sum(e["train_seconds"] for e in m["history"]) for m in metrics),
    }


def summary_key(variant: str, recipe: str) -> str:
    return variant if recipe == DEFAULT_RECIPE else f"{variant}@{recipe}"


def summarize(runs: str | Path = "runs") -> dict[str, dict[str, Any]]:
    """``{dataset: {variant[@recipe]: aggregate}}`` from every finished run under ``runs``,
    plus ``best_variant``: the variant with the best mean *validation* accuracy under the
    project's recipe (chosen without looking at test numbers)."""
    runs = Path(runs)
    summary: dict[str, dict[str, Any]] = {}
    for dataset_dir in sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []:
        per_dataset: dict[str, Any] = {}
        for recipe_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir() and p.name in PRESETS):
            for variant_dir in sorted(p for p in recipe_dir.iterdir() if p.is_dir() and p.name in VARIANTS):
                metrics = [read_json(p / METRICS) for p in sorted(variant_dir.glob("seed*")) if (p / METRICS).exists()]
                if metrics:
                    entry = aggregate(sorted(metrics, key=lambda m: m["config"]["seed"]))
                    entry.update(variant=variant_dir.name, recipe=recipe_dir.name, label=LABELS[variant_dir.name])
                    per_dataset[summary_key(variant_dir.name, recipe_dir.name)] = entry
        candidates = {k: v for k, v in per_dataset.items()
                      if v["recipe"] == DEFAULT_RECIPE and v["variant"] in BEST_CANDIDATES and v["val_mean"] is not None}
        if candidates:
            best = max(candidates, key=lambda k: candidates[k]["val_mean"])
            per_dataset["best_variant"] = {**candidates[best], "chosen_by": "best mean validation accuracy"}
        if per_dataset:
            summary[dataset_dir.name] = per_dataset
    return summary


def write_summary(runs: str | Path, path: str | Path) -> dict[str, Any]:
    summary = summarize(runs)
    if not summary:
        raise MnistLibError(f"no finished runs under {runs}: run the model notebooks (or `make report`) first")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(path, summary)
    return summary


def read_summary(path: str | Path) -> dict[str, Any]:
    return read_json(path)
