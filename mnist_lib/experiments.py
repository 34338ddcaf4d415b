"""Named variants, multi-seed runs and the summary the comparison and the report read.

A run folder is ``<runs>/<dataset>/<recipe>/<variant>/seed<S>/`` (metrics.json, model.pt).
The seed models are variants too, so the regularization ablation and the model notebooks share
runs instead of training the same configuration twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import torch

from mnist_lib import stats
from mnist_lib.analysis import run_record
from mnist_lib.config import DATASETS, PRESETS, TrainConfig, variant_config
from mnist_lib.data import DataSplits, load_data
from mnist_lib.errors import Diverged, MnistLibError
from mnist_lib.files import read_json, write_json
from mnist_lib.registry import (ABLATION, BEST_CANDIDATES, DEFAULT_RECIPE, HEADLINE, LR_SWEEP, ROTATION_ROWS, VARIANTS,
                                label, summary_key)
from mnist_lib.train import (CHECKPOINT, METRICS, check_resumable, environment, load_checkpoint,
                             select_device, train)

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
    ("mnist", "course", "ablation_none", "custom_mlp"),  # LeNet-5 under the course recipe is the ablation's "none"
]


def run_dir(runs: str | Path, dataset: str, recipe: str, variant: str, seed: int) -> Path:
    return Path(runs) / dataset / recipe / variant / f"seed{seed}"


def _resumable(out: Path, config: TrainConfig, label: str) -> bool:
    """Whether the killed run in ``out`` (checkpoint.pt, no finished metrics) can be continued
    with ``config``. When a checkpoint is there but is for another training config or cannot be
    read, say in one line that the run starts over."""
    path = out / CHECKPOINT
    if not path.exists():
        return False
    try:
        checkpoint = load_checkpoint(path)
        check_resumable(checkpoint, config, path)  # what train(resume=True) checks, so it cannot refuse
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
        shifts = variant in HEADLINE and seeded.dataset == "mnist"  # the report's shift-robustness rows
        try:
            results.append(train(seeded, out, data=data, resume=resume, overwrite=not resume,
                                 record=lambda model, d: run_record(model, d, shifts)).metrics)
        except Diverged as exc:
            print(f"{label}: {exc}")
            results.append(_diverged_record(seeded, out, exc))
    return results


def current_environment(config: TrainConfig) -> dict[str, str]:
    """What a run's numbers may depend on besides its config: the torch build and the kind of device."""
    return {"torch": torch.__version__, "device_type": select_device(config.device).type}


def _recorded_environment(metrics: dict[str, Any]) -> dict[str, str]:
    env = metrics.get("environment", {})
    return {"torch": env.get("torch"), "device_type": str(env.get("device", "")).split(":")[0]}


def _not_reusable(saved: dict[str, Any], config: TrainConfig) -> str | None:
    """Why a finished run cannot stand for ``config`` in this study (None: it can). One study is one
    environment, so a run trained with another torch build or on another kind of device is
    trained again; a run must also carry its record (metrics.json's "analysis")."""
    k = config.first_difference(saved["config"])
    if k is not None:
        return f"it was trained with {k}={saved['config'].get(k)!r}, not {getattr(config, k)!r}"
    here, there = current_environment(config), _recorded_environment(saved)
    if here != there:
        return f"it was trained with torch {there['torch']} on {there['device_type']}, this study runs torch " \
               f"{here['torch']} on {here['device_type']}"
    if "analysis" not in saved and "diverged" not in saved:
        return "its metrics.json has no record (analysis) of the kept model"
    return None


def _diverged_record(config: TrainConfig, out: Path, exc: Diverged) -> dict[str, Any]:
    """metrics.json of a run that diverged: its epochs before that, counted as a failed run."""
    metrics = {"config": config.to_dict(), "environment": environment(select_device(config.device), config),
               "params": None, "history": exc.history, "selected_epoch": None, "diverged": str(exc),
               "final": {"test_acc": None, "val_acc": None, "test_loss": None, "train_acc": None,
                         "train_eval_acc": None}, "finished_at": round(time.time(), 1)}
    write_json(out / METRICS, metrics)
    (out / CHECKPOINT).unlink(missing_ok=True)
    return metrics


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
    val_mean, val_std = stats.mean_std(learned(per_seed("val_acc")))
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
        "val_std": val_std,
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
                    entry.update(variant=variant_dir.name, recipe=recipe_dir.name, label=label(variant_dir.name))
                    per_dataset[summary_key(variant_dir.name, recipe_dir.name)] = entry
        candidates = {k: v for k, v in per_dataset.items()
                      if v["recipe"] == DEFAULT_RECIPE and v["variant"] in BEST_CANDIDATES and v["val_mean"] is not None}
        if candidates:
            best = max(candidates, key=lambda k: candidates[k]["val_mean"])
            per_dataset["best_variant"] = {**candidates[best], "chosen_by": "best mean validation accuracy"}
        if per_dataset:
            summary[dataset_dir.name] = per_dataset
    return summary


def comparisons(summary: dict[str, Any], pairs: Iterable[tuple[str, str, str, str]] = COMPARISONS
                ) -> list[dict[str, Any]]:
    """Every pair present in ``summary``: Welch's t-test, 95% CI and a verdict, and the p-value
    Holm-adjusted within its family (the rows tested against one baseline under one recipe)."""
    out = []
    for dataset, recipe, row, baseline in pairs:
        a = summary.get(dataset, {}).get(summary_key(row, recipe))
        b = summary.get(dataset, {}).get(summary_key(baseline, recipe))
        if a and b:
            out.append({"dataset": dataset, "recipe": recipe, "row": row, "baseline": baseline,
                        "label": label(row), "baseline_label": label(baseline),
                        "gap": a["gap_mean"], "baseline_gap": b["gap_mean"], **stats.compare_rows(a, b)})
    families: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for c in out:
        families.setdefault((c["dataset"], c["recipe"], c["baseline"]), []).append(c)
    for family in families.values():
        for c, adjusted in zip(family, stats.holm([c["p"] for c in family])):
            c.update(p_holm=adjusted, family_size=len(family))
    return out


EPOCHS_TO_VAL = 98.5  # validation accuracy (%) every course-recipe ablation run reaches within its epochs


def crossing_epoch(history: list[dict[str, Any]], threshold: float) -> float | None:
    """When validation accuracy first reaches ``threshold``, in epochs: linear between the two
    evaluations around the crossing (an epoch is too coarse a unit for runs that differ by less),
    the first epoch itself when it is already there, None when it never gets there."""
    before = None
    for entry in history:
        value = entry["val_acc"] or 0.0
        if value >= threshold:
            if before is None or value == before[1]:
                return float(entry["epoch"])
            return before[0] + (threshold - before[1]) / (value - before[1])
        before = (entry["epoch"], value)
    return None


def epochs_to_accuracy(runs: str | Path, threshold: float = EPOCHS_TO_VAL) -> list[dict[str, Any]]:
    """"BatchNorm reduces the epochs needed to converge", measured: per course-ablation row and
    seed, the epochs until validation accuracy reaches ``threshold`` (`crossing_epoch`; None:
    never), and Welch's test of each row against "none" on them (runs that reached it)."""
    rows = {}
    for variant in ABLATION:
        folder = Path(runs) / "mnist" / "course" / variant
        records = [read_json(p / METRICS) for p in sorted(folder.glob("seed*")) if (p / METRICS).exists()]
        epochs = [crossing_epoch(m["history"], threshold) for m in records]
        if records:
            rows[variant] = {"variant": variant, "label": label(variant), "threshold": threshold, "epochs": epochs,
                             "seeds": [m["config"]["seed"] for m in records], "of": records[0]["config"]["epochs"]}
    base = [e for e in rows.get(ABLATION[0], {}).get("epochs", []) if e is not None]
    for row in rows.values():
        reached = [e for e in row["epochs"] if e is not None]
        row.update(mean=stats.mean_std(reached)[0], not_reached=len(row["epochs"]) - len(reached),
                   welch=stats.welch(reached, base) if row["variant"] != ABLATION[0] else None)
    return list(rows.values())


def lr_sweep(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per learning rate of the sweep: each variant's row and BatchNorm against none (Welch)."""
    out = []
    for lr, groups in summary.get("lr_sweep", {}).items():
        rows = groups.get("mnist", {})
        test = comparisons(groups, [("mnist", "course", LR_SWEEP[1], LR_SWEEP[0])])
        out.append({"lr": float(lr), "rows": {v: rows.get(summary_key(v, "course")) for v in LR_SWEEP},
                    "comparison": test[0] if test else None})
    return out


def convergence(summary: dict[str, Any], doubled: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model with a "2x epochs" row: did twice the epochs raise the mean by more than the std?"""
    out = []
    for dataset, rows in doubled.items():
        for key, long in rows.items():
            short = summary.get(dataset, {}).get(key)
            if key != "best_variant" and short and short["val_mean"] is not None and long["val_mean"] is not None:
                out.append({"dataset": dataset, "variant": long["variant"], "label": label(long["variant"]),
                            **stats.converged(short, long)})
    return out


SITTING_GAP_SECONDS = 3600  # runs more than an hour apart were trained in separate sittings


def run_records(runs: str | Path) -> list[dict[str, Any]]:
    """Every finished run's metrics.json under ``runs`` (the study's groups included)."""
    return [read_json(p) for p in sorted(Path(runs).rglob(METRICS))]


def study_environment(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The one environment the study's runs were trained in (torch, kind and name of the device),
    the number of sittings it took (runs more than an hour apart start a new one) and their wall
    time summed. More than one environment is an error: a study's arms must not differ in
    machine or software (`run_seeds` retrains a run from another environment)."""
    envs = {(e["torch"], e["device_type"]) for e in map(_recorded_environment, records)}
    if len(envs) > 1:
        raise MnistLibError(f"the runs come from {len(envs)} environments ({sorted(envs)}): "
                            f"retrain them in one (python -m mnist_lib report reuses only this one's runs)")
    spans = sorted((m["finished_at"] - sum(e["seconds"] for e in m["history"]), m["finished_at"])
                   for m in records if "finished_at" in m)
    sittings: list[list[float]] = []
    for start, end in spans:
        if sittings and start - sittings[-1][1] <= SITTING_GAP_SECONDS:
            sittings[-1][1] = max(sittings[-1][1], end)
        else:
            sittings.append([start, end])
    env = records[0]["environment"] if records else {}
    return {"torch": env.get("torch"), "device_type": str(env.get("device", "")).split(":")[0],
            "device_name": env.get("device_name"), "python": env.get("python"), "runs": len(records),
            "sittings": len(sittings), "wall_seconds": round(sum(e - s for s, e in sittings), 1) if sittings else None,
            "first": spans[0][0] if spans else None, "last": spans[-1][1] if spans else None}


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
    summary["epochs_to_accuracy"] = epochs_to_accuracy(runs)
    summary["lr_comparisons"] = lr_sweep(summary)
    summary["environment"] = study_environment(run_records(runs))
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
