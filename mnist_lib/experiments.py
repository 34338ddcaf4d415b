"""Named variants, multi-seed runs and the summary the comparison and the report read.

A run folder is ``<runs>/<dataset>/<recipe>/<variant>/seed<S>/`` (metrics.json, model.pt).
The seed models are variants too, so the regularization ablation and the model notebooks share
runs instead of training the same configuration twice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable

from mnist_lib import stats
from mnist_lib.analysis import run_record
from mnist_lib.config import DATASETS, PRESETS, TrainConfig
from mnist_lib.data import DataSplits, load_data
from mnist_lib.errors import Diverged, MnistLibError
from mnist_lib.files import read_json, write_json
from mnist_lib.train import (CHECKPOINT, METRICS, _check_resumable, environment, load_checkpoint, load_model,
                             select_device, train)

# Everything a variant changes on top of a recipe (PRESETS). All stay at most 62k parameters.
VARIANTS: dict[str, dict[str, Any]] = {
    # the writeup's three models, under whatever the recipe says
    "lenet5": dict(model="lenet5"),
    "custom_mlp": dict(model="custom_mlp"),
    "lenet5_regularized": dict(model="lenet5_regularized"),
    # a candidate for the best variant: BatchNorm without Dropout (Dropout may not help a
    # 62k-parameter net that augmentation already regularizes)
    "lenet5_batchnorm": dict(model="lenet5", batchnorm=True),
    # does rotation earn its cost? The recipe's augmentation is whole-pixel shifts; this row adds
    # +-10 degree rotations (an affine resampling, ~13% of a LeNet-5 epoch on the CPU)
    "lenet5_rotation": dict(model="lenet5", augment_mode="affine"),
    # the regularization ablation: every regularizer set explicitly, so a row means the same
    # thing under either recipe; one regularizer is added per row
    "ablation_none": dict(model="lenet5", weight_decay=0.0, augment=False),
    "ablation_batchnorm": dict(model="lenet5", batchnorm=True, weight_decay=0.0, augment=False),
    "ablation_dropout": dict(model="lenet5", dropout=0.2, weight_decay=0.0, augment=False),
    "ablation_batchnorm_dropout": dict(model="lenet5_regularized", weight_decay=0.0, augment=False),
    "ablation_augmentation": dict(model="lenet5", weight_decay=0.0, augment=True),
    "ablation_batchnorm_dropout_augmentation": dict(model="lenet5_regularized", weight_decay=0.0, augment=True),
}
SEED_MODELS = ["lenet5", "custom_mlp", "lenet5_regularized"]
# Variants the best variant is chosen from (by validation accuracy): the full-budget runs.
BEST_CANDIDATES = ["lenet5", "lenet5_regularized", "lenet5_batchnorm", "custom_mlp"]
ABLATION = ["ablation_none", "ablation_batchnorm", "ablation_dropout", "ablation_batchnorm_dropout",
            "ablation_augmentation", "ablation_batchnorm_dropout_augmentation"]
LABELS = {
    "lenet5": "LeNet-5",
    "custom_mlp": "CustomMLP",
    "lenet5_regularized": "LeNet5_Regularized",
    "lenet5_batchnorm": "LeNet-5 + BatchNorm (no Dropout)",
    "lenet5_rotation": "LeNet-5, shifts + rotations",
    "ablation_none": "none",
    "ablation_batchnorm": "BatchNorm only",
    "ablation_dropout": "Dropout only",
    "ablation_batchnorm_dropout": "BatchNorm + Dropout (the writeup's model)",
    "ablation_augmentation": "augmentation",
    "ablation_batchnorm_dropout_augmentation": "BatchNorm + Dropout + augmentation",
}
DEFAULT_RECIPE = "tuned"
# The rotation row and the headline row it is compared with (shifts only).
ROTATION_ROWS = {"lenet5_rotation": "lenet5"}
# The study's questions: (dataset, recipe, row, baseline), each answered by Welch's t-test.
COMPARISONS = [
    *[("mnist", "course", v, "ablation_none") for v in ABLATION[1:]],
    ("mnist", "tuned", "lenet5", "ablation_none"),  # weight decay + augmentation
    ("mnist", "tuned", "lenet5_batchnorm", "ablation_none"),
    ("mnist", "tuned", "lenet5_regularized", "ablation_none"),
    ("mnist", "tuned", "lenet5_batchnorm", "lenet5"),  # BatchNorm on top of the project's recipe
    ("mnist", "tuned", "lenet5_regularized", "lenet5"),  # BatchNorm + Dropout on top of it
    ("fashion-mnist", "tuned", "lenet5_regularized", "lenet5"),
    *[("mnist", "tuned", row, baseline) for row, baseline in ROTATION_ROWS.items()],  # does the rotation earn its cost?
    ("mnist", "tuned", "lenet5", "custom_mlp"),  # the writeup's two models, same size
    ("mnist", "course", "lenet5", "custom_mlp"),
]
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


def _field_defaults() -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _same_training(saved: dict[str, Any], config: TrainConfig) -> bool:
    """Whether a saved config (metrics.json's or checkpoint.pt's) trains what ``config`` trains.
    Execution fields may differ; a field the saved config lacks (added to TrainConfig after the
    run) counts as its current default, so old runs stay reusable."""
    defaults = _field_defaults()
    missing = object()
    return all(saved.get(k, defaults.get(k, missing)) == v
               for k, v in config.to_dict().items() if k not in EXECUTION_FIELDS)


def _resumable(out: Path, config: TrainConfig, label: str) -> bool:
    """Whether the killed run in ``out`` (checkpoint.pt, no finished metrics) can be continued
    with ``config``. When a checkpoint is there but is for another training config or cannot be
    read, say in one line that the run starts over."""
    path = out / CHECKPOINT
    if not path.exists():
        return False
    try:
        checkpoint = load_checkpoint(path)
        saved = checkpoint["config"]
        if not _same_training(saved, config):
            defaults = _field_defaults()
            wanted = config.to_dict()
            k = next(k for k, v in wanted.items()
                     if k not in EXECUTION_FIELDS and saved.get(k, defaults.get(k)) != v)
            raise MnistLibError(f"{path} is for another training config ({k}={saved.get(k, defaults.get(k))!r}, "
                                f"not {wanted[k]!r})")
        _check_resumable(checkpoint, config, path)  # what train(resume=True) checks, so it cannot refuse
    except MnistLibError as exc:
        print(f"{label}: starting over: {' '.join(str(exc).split())}")
        return False
    print(f"{label}: resuming the killed run in {out} after epoch {checkpoint['epoch']} of {config.epochs}")
    return True


def run_seeds(variant: str, seeds: Iterable[int], runs: str | Path = "runs", recipe: str = DEFAULT_RECIPE,
              data: DataSplits | None = None, retrain: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """Train ``variant`` once per seed (or reuse a finished run with the same training config)
    and return the metrics of each seed, in order. A killed run (checkpoint.pt, no metrics.json)
    of the same training config continues from its last finished epoch; ``retrain`` starts
    every seed over."""
    seeds = list(seeds)
    if not seeds:
        raise MnistLibError("seeds is empty: give at least one seed, e.g. [0, 1, 2]")
    config = variant_config(variant, recipe, **overrides)
    results = []
    for seed in seeds:
        seeded = config.replace(seed=seed)
        out = run_dir(runs, seeded.dataset, recipe, variant, seed)
        label = f"{variant} seed {seed}"
        if not retrain and (out / METRICS).exists():
            saved = read_json(out / METRICS)
            why = _not_reusable(saved, seeded)
            if why is None:
                print(f"{label}: reusing the finished run in {out}")
                results.append(saved)
                continue
            print(f"{label}: training again: {why}")
        resume = not retrain and _resumable(out, seeded, label)
        if data is None:
            data = load_data(config.dataset, config.data_dir, config.data_format, config.val_size,
                             config.limit, config.download)
        shifts = variant in SEED_MODELS and seeded.dataset == "mnist"  # the report's shift-robustness rows
        try:
            results.append(train(seeded, out, data=data, resume=resume, overwrite=not resume,
                                 record=lambda model, d: run_record(model, d, shifts)).metrics)
        except Diverged as exc:
            print(f"{label}: {exc}")
            results.append(_diverged_record(seeded, out, exc))
    return results


def current_environment(config: TrainConfig) -> dict[str, str]:
    """What a run's numbers may depend on besides its config: the torch build and the kind of device."""
    import torch

    return {"torch": torch.__version__, "device_type": select_device(config.device).type}


def _recorded_environment(metrics: dict[str, Any]) -> dict[str, str]:
    env = metrics.get("environment", {})
    return {"torch": env.get("torch"), "device_type": str(env.get("device", "")).split(":")[0]}


def _not_reusable(saved: dict[str, Any], config: TrainConfig) -> str | None:
    """Why a finished run cannot stand for ``config`` in this study (None: it can). One study is one
    environment, so a run trained with another torch build or on another kind of device is
    trained again; a run must also carry its record (metrics.json's "analysis")."""
    if not _same_training(saved["config"], config):
        return "it was trained with another config"
    here, there = current_environment(config), _recorded_environment(saved)
    if here != there:
        return f"it was trained with torch {there['torch']} on {there['device_type']}, this study runs torch " \
               f"{here['torch']} on {here['device_type']}"
    if "analysis" not in saved and "diverged" not in saved:
        return "its metrics.json has no record (analysis) of the kept model"
    return None


def _diverged_record(config: TrainConfig, out: Path, exc: Diverged) -> dict[str, Any]:
    """metrics.json of a run that diverged: its epochs before that, counted as a failed run."""
    import torch

    metrics = {"config": config.to_dict(), "environment": environment(select_device(config.device), config),
               "params": None, "history": exc.history, "selected_epoch": None, "diverged": str(exc),
               "final": {"test_acc": None, "val_acc": None, "test_loss": None, "train_acc": None,
                         "train_eval_acc": None}}
    write_json(out / METRICS, metrics)
    (out / CHECKPOINT).unlink(missing_ok=True)
    return metrics


def load_run(path: str | Path) -> tuple[dict[str, Any], Any]:
    """(metrics, kept model on the CPU) of a finished run folder."""
    metrics = read_json(Path(path) / METRICS)
    config = TrainConfig.from_dict({**metrics["config"], "progress": False})
    return metrics, load_model(Path(path) / "model.pt", config).eval()


def aggregate(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """A row of the study: per-seed numbers of the kept models, and mean ± std over the runs
    that learned. A failed run (test accuracy near chance) is counted in ``failed`` and kept
    out of every mean."""
    test = [m["final"]["test_acc"] for m in metrics]
    ok = [not bad for bad in stats.failed(test)]  # a diverged run (test_acc None) failed too

    def per_seed(key: str) -> list[Any]:
        return [m["final"].get(key) for m in metrics]

    def learned(values: list[Any]) -> list[float]:
        return [v for v, good in zip(values, ok) if good and v is not None]

    mean, std = stats.mean_std(learned(test))
    val_mean, _ = stats.mean_std(learned(per_seed("val_acc")))
    train_eval = per_seed("train_eval_acc")
    gaps = [t - a for t, a, good in zip(train_eval, test, ok) if good and t is not None]
    gap_mean, gap_std = stats.mean_std(gaps)
    return {
        "test_acc": test,
        "learned_acc": learned(test),
        "failed": len(test) - sum(ok),
        "failed_seeds": [m["config"]["seed"] for m, good in zip(metrics, ok) if not good],
        "mean": mean,
        "std": std,
        "seeds": [m["config"]["seed"] for m in metrics],
        "val_acc": per_seed("val_acc"),
        "val_mean": val_mean,
        "test_loss": per_seed("test_loss"),
        "train_acc": per_seed("train_acc"),  # running accuracy of the kept epoch (augmented, Dropout on)
        "train_eval_acc": train_eval,  # the kept model on the clean training images
        "gap_mean": gap_mean,  # train_eval_acc - test_acc, runs that learned
        "gap_std": gap_std,
        "selected_epoch": [m["selected_epoch"] for m in metrics],
        "diverged": [m["config"]["seed"] for m in metrics if "diverged" in m],
        "epochs": metrics[0]["config"]["epochs"],
        "lr": metrics[0]["config"]["lr"],
        "train_size": next((m["sizes"]["train"] for m in metrics if "sizes" in m), None),
        "params": next((m["params"] for m in metrics if m["params"]), None),
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
    for dataset_dir in sorted(p for p in runs.iterdir() if p.is_dir() and p.name in DATASETS) if runs.is_dir() else []:
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


def comparisons(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pair of COMPARISONS present in ``summary``: Welch's t-test, 95% CI and a verdict."""
    out = []
    for dataset, recipe, row, baseline in COMPARISONS:
        a = summary.get(dataset, {}).get(summary_key(row, recipe))
        b = summary.get(dataset, {}).get(summary_key(baseline, recipe))
        if a and b:
            out.append({"dataset": dataset, "recipe": recipe, "row": row, "baseline": baseline,
                        "label": LABELS[row], "baseline_label": LABELS[baseline],
                        "gap": a["gap_mean"], "baseline_gap": b["gap_mean"], **stats.compare_rows(a, b)})
    return out


def convergence(summary: dict[str, Any], doubled: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model with a "2x epochs" row: did twice the epochs raise the mean by more than the std?"""
    out = []
    for dataset, rows in doubled.items():
        for key, long in rows.items():
            short = summary.get(dataset, {}).get(key)
            if key != "best_variant" and short and short["mean"] is not None and long["mean"] is not None:
                out.append({"dataset": dataset, "variant": long["variant"], "label": LABELS[long["variant"]],
                            **stats.converged(short, long)})
    return out


def runs_wall_seconds(runs: str | Path) -> float | None:
    """Elapsed time from the start of the first run under ``runs`` to the end of the last one:
    the study's wall time even when it was stopped and continued."""
    return wall_seconds(Path(runs).rglob(METRICS))


def run_span(path: Path, metrics: dict[str, Any] | None = None) -> tuple[float, float]:
    """(start, end) of a finished run: it ends when its metrics.json is written and starts that
    long before by the sum of its epochs' seconds (file times: valid on the machine that wrote it)."""
    metrics = read_json(path) if metrics is None else metrics
    end = path.stat().st_mtime
    return end - sum(e["seconds"] for e in metrics.get("history", [])), end


def wall_seconds(metrics_paths: Iterable[Path]) -> float | None:
    """First start to last end of these runs."""
    spans = [run_span(path) for path in metrics_paths]
    return round(max(e for _, e in spans) - min(s for s, _ in spans), 1) if spans else None


PART_GAP_SECONDS = 3600  # runs on one machine more than an hour apart belong to separate sittings


def hardware(runs: str | Path) -> list[dict[str, Any]]:
    """Where and when the study's runs were trained: `sittings` of every run under ``runs``.
    More than one row means the study was run in parts."""
    runs = Path(runs)
    return sittings(p for d in (*DATASETS, "2x", "stability") for p in (runs / d).rglob(METRICS))


def sittings(metrics_paths: Iterable[Path]) -> list[dict[str, Any]]:
    """These runs grouped by machine (device, device name) and sitting (runs more than an hour
    apart start a new one), from their metrics.json files: per group the number of runs, the
    first start to last end (`run_span`) and their training seconds summed, oldest first."""
    spans: dict[tuple[str, str], list[tuple[float, float, Path]]] = {}
    for path in metrics_paths:
        metrics = read_json(path)
        env = metrics.get("environment", {})
        spans.setdefault((env.get("device", "unknown"), env.get("device_name", "unknown")), []).append(
            (*run_span(path, metrics), path))
    rows = []
    for (device, name), items in spans.items():
        items.sort()
        parts: list[list[tuple[float, float, Path]]] = []
        for item in items:
            if parts and item[0] - max(i[1] for i in parts[-1]) <= PART_GAP_SECONDS:
                parts[-1].append(item)
            else:
                parts.append([item])
        for part in parts:
            rows.append({"device": device, "device_name": name, "runs": len(part),
                         "started": min(i[0] for i in part),
                         "wall_seconds": round(max(i[1] for i in part) - min(i[0] for i in part), 1),
                         "train_seconds": round(sum(i[1] - i[0] for i in part), 1)})
    return sorted(rows, key=lambda r: r["started"])


def study_summary(runs: str | Path, **extra: Any) -> dict[str, Any]:
    """The whole study from its run folders: the main rows per dataset, the "2x" and
    "stability" groups, the comparisons and the convergence check, plus ``extra`` (wall time,
    device, plan)."""
    runs = Path(runs)
    summary: dict[str, Any] = summarize(runs)
    summary["2x"] = summarize(runs / "2x")
    summary["stability"] = summarize(runs / "stability")
    lr_dir = runs / "lr"
    summary["lr_sweep"] = {p.name: summarize(p) for p in sorted(lr_dir.iterdir(), key=lambda p: float(p.name))
                           } if lr_dir.is_dir() else {}
    summary["comparisons"] = comparisons(summary)
    summary["convergence"] = convergence(summary, summary["2x"])
    summary["hardware"] = hardware(runs)
    summary.update(extra)
    return summary


def write_summary(runs: str | Path, path: str | Path, **extra: Any) -> dict[str, Any]:
    summary = study_summary(runs, **extra)
    if not any(d in summary for d in DATASETS):
        raise MnistLibError(f"no finished runs under {runs}: run the model notebooks (or `make report`) first")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(path, summary)
    return summary


def read_summary(path: str | Path) -> dict[str, Any]:
    return read_json(path)
