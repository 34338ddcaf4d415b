"""Multi-seed runs of named variants in ``<runs>/<dataset>/<recipe>/<variant>/seed<S>/`` (shared by the ablation
and the model notebooks, so no configuration trains twice) and the summary the comparison and the report read."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import torch

from mnist_lib import stats
from mnist_lib.analysis import run_record
from mnist_lib.config import DATASETS, PRESETS, TrainConfig, variant_config
from mnist_lib.data import DataSplits, load_config_data
from mnist_lib.errors import Diverged, MnistLibError
from mnist_lib.files import read_json, write_json
from mnist_lib.registry import (ABLATION, BEST_CANDIDATES, DEFAULT_RECIPE, HEADLINE, LR_SWEEP, VARIANTS, label,
                                summary_key)
from mnist_lib.train import CHECKPOINT, METRICS, check_resumable, environment, load_checkpoint, select_device, train

# The study's questions: (dataset, recipe, row, baseline), each answered by Welch's t-test.
COMPARISONS = [
    *[("mnist", "course", v, "ablation_none") for v in ABLATION[1:]],
    # the project's recipe (weight decay + augmentation), + BatchNorm, + BatchNorm + Dropout: vs none and the recipe
    *[("mnist", "tuned", row, "ablation_none") for row in ("lenet5", "lenet5_batchnorm", "lenet5_regularized")],
    *[("mnist", "tuned", row, "lenet5") for row in ("lenet5_batchnorm", "lenet5_regularized")],
    ("fashion-mnist", "tuned", "lenet5_regularized", "lenet5"),
    ("mnist", "tuned", "lenet5_rotation", "lenet5"),  # does the rotation earn its cost?
    ("mnist", "tuned", "lenet5", "custom_mlp"),  # the writeup's two models, same size
    ("mnist", "course", "ablation_none", "custom_mlp"),  # LeNet-5 under the course recipe is the ablation's "none"
]
EPOCHS_TO_VAL = 98.5  # validation accuracy (%) every course-recipe ablation run reaches within its epochs
SITTING_GAP_SECONDS = 3600  # runs more than an hour apart were trained in separate sittings


def run_dir(runs: str | Path, dataset: str, recipe: str, variant: str, seed: int) -> Path:
    return Path(runs) / dataset / recipe / variant / f"seed{seed}"


def _resumable(out: Path, config: TrainConfig, name: str) -> bool:
    """Whether the killed run in ``out`` (checkpoint.pt, no metrics.json) can continue with ``config``;
    when its checkpoint is for another config or unreadable, say in one line that the run starts over."""
    path = out / CHECKPOINT
    if not path.exists():
        return False
    try:
        checkpoint = load_checkpoint(path)
        check_resumable(checkpoint, config, path)  # what train(resume=True) checks, so it cannot refuse
    except MnistLibError as exc:
        print(f"{name}: starting over: {' '.join(str(exc).split())}")
        return False
    print(f"{name}: resuming the killed run in {out} after epoch {checkpoint['epoch']} of {config.epochs}")
    return True


def run_seeds(variant: str, seeds: Iterable[int], runs: str | Path = "runs", recipe: str = DEFAULT_RECIPE,
              data: DataSplits | None = None, retrain: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """Train ``variant`` once per seed (or reuse a finished run of the same training config) and return each
    seed's metrics, in order; a killed run continues from its last finished epoch, ``retrain`` starts over."""
    seeds = list(seeds)
    if not seeds:
        raise MnistLibError("seeds is empty: give at least one seed, e.g. [0, 1, 2]")
    config = variant_config(variant, recipe, **overrides)
    results = []
    for seed in seeds:
        seeded = config.replace(seed=seed)
        out = run_dir(runs, seeded.dataset, recipe, variant, seed)
        name = f"{variant} seed {seed}"
        if not retrain and (out / METRICS).exists():
            saved = read_json(out / METRICS)
            why = _not_reusable(saved, seeded)
            if why is None:
                print(f"{name}: reusing the finished run in {out}")
                results.append(saved)
                continue
            print(f"{name}: training again: {why}")
        resume = not retrain and _resumable(out, seeded, name)
        if data is None:
            data = load_config_data(config)
        shifts = variant in HEADLINE and seeded.dataset == "mnist"  # the report's shift-robustness rows
        try:
            results.append(train(seeded, out, data=data, resume=resume, overwrite=not resume,
                                 record=lambda model, d: run_record(model, d, shifts)).metrics)
        except Diverged as exc:
            print(f"{name}: {exc}")
            results.append(_diverged_record(seeded, out, exc))
    return results


def current_environment(config: TrainConfig) -> dict[str, str]:
    """What a run's numbers may depend on besides its config: the torch build and the kind of device."""
    return {"torch": torch.__version__, "device_type": select_device(config.device).type}


def _recorded_environment(metrics: dict[str, Any]) -> dict[str, str]:
    env = metrics.get("environment", {})
    return {"torch": env.get("torch"), "device_type": str(env.get("device", "")).split(":")[0]}


def _not_reusable(saved: dict[str, Any], config: TrainConfig) -> str | None:
    """Why a finished run cannot stand for ``config`` in this study (None: it can). One study is one environment
    (torch build, kind of device), and a run must carry its record (metrics.json's "analysis")."""
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
               "final": dict.fromkeys(("test_acc", "val_acc", "test_loss", "train_acc", "train_eval_acc")),
               "finished_at": round(time.time(), 1)}
    write_json(out / METRICS, metrics)
    (out / CHECKPOINT).unlink(missing_ok=True)
    return metrics


def aggregate(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """A row of the study: per-seed numbers of the kept models, and mean ± std over the runs that learned.
    A failed run (test accuracy near chance, or diverged) is counted in ``failed``, kept out of every mean."""
    test = [m["final"]["test_acc"] for m in metrics]
    seeds = [m["config"]["seed"] for m in metrics]
    final = {k: [m["final"].get(k) for m in metrics] for k in ("val_acc", "test_loss", "train_acc", "train_eval_acc")}
    ok = [not bad for bad in stats.failed(test)]
    mean, std = stats.mean_std(stats.learned(test, test))
    val_mean, val_std = stats.mean_std(stats.learned(final["val_acc"], test))
    gap_mean, gap_std = stats.mean_std([t - a for t, a, good in zip(final["train_eval_acc"], test, ok)
                                        if good and t is not None])
    return {
        "test_acc": test, "learned_acc": stats.learned(test, test),
        "failed": len(test) - sum(ok), "failed_seeds": [s for s, good in zip(seeds, ok) if not good],
        "mean": mean, "std": std, "seeds": seeds,
        "val_acc": final["val_acc"], "val_mean": val_mean, "val_std": val_std, "test_loss": final["test_loss"],
        "train_acc": final["train_acc"],  # running accuracy of the kept epoch (augmented, Dropout on)
        "train_eval_acc": final["train_eval_acc"],  # the kept model on the clean training images
        "gap_mean": gap_mean, "gap_std": gap_std,  # train_eval_acc - test_acc, runs that learned
        "selected_epoch": [m["selected_epoch"] for m in metrics],
        "diverged": [s for s, m in zip(seeds, metrics) if "diverged" in m],
        "epochs": metrics[0]["config"]["epochs"], "lr": metrics[0]["config"]["lr"],
        "train_size": next((m["sizes"]["train"] for m in metrics if "sizes" in m), None),
        "params": next((m["params"] for m in metrics if m["params"]), None),
        "seconds": sum(sum(e["seconds"] for e in m["history"]) for m in metrics),
        "train_seconds": sum(sum(e["train_seconds"] for e in m["history"]) for m in metrics),
    }


def _seed_records(folder: Path) -> list[dict[str, Any]]:
    """metrics.json of every finished run in ``folder``'s seed<S>/ sub-folders, in path order."""
    return [read_json(p) for p in sorted(folder.glob(f"seed*/{METRICS}"))]


def summarize(runs: str | Path = "runs") -> dict[str, dict[str, Any]]:
    """``{dataset: {variant[@recipe]: aggregate}}`` from every finished run under ``runs``, plus ``best_variant``:
    the best mean *validation* accuracy under the project's recipe (chosen without looking at test numbers)."""
    summary: dict[str, dict[str, Any]] = {}
    for folder in sorted(Path(runs).glob("*/*/*")):
        dataset, recipe, variant = folder.parts[-3:]
        if dataset in DATASETS and recipe in PRESETS and variant in VARIANTS and (metrics := _seed_records(folder)):
            summary.setdefault(dataset, {})[summary_key(variant, recipe)] = {
                **aggregate(sorted(metrics, key=lambda m: m["config"]["seed"])),
                "variant": variant, "recipe": recipe, "label": label(variant)}
    for rows in summary.values():
        best = max((v for v in rows.values() if v["recipe"] == DEFAULT_RECIPE and v["variant"] in BEST_CANDIDATES
                    and v["val_mean"] is not None), key=lambda v: v["val_mean"], default=None)
        if best:
            rows["best_variant"] = {**best, "chosen_by": "best mean validation accuracy"}
    return summary


def comparisons(summary: dict[str, Any], pairs: Iterable[tuple[str, str, str, str]] = COMPARISONS
                ) -> list[dict[str, Any]]:
    """Every pair present in ``summary``: Welch's t-test, 95% CI and a verdict, and the p-value
    Holm-adjusted within its family (the rows tested against one baseline under one recipe)."""
    out = []
    for dataset, recipe, row, baseline in pairs:
        a, b = (summary.get(dataset, {}).get(summary_key(v, recipe)) for v in (row, baseline))
        if a and b:
            out.append({"dataset": dataset, "recipe": recipe, "row": row, "baseline": baseline,
                        "label": label(row), "baseline_label": label(baseline),
                        "gap": a["gap_mean"], "baseline_gap": b["gap_mean"], **stats.compare_rows(a, b)})
    for key in {(c["dataset"], c["recipe"], c["baseline"]) for c in out}:
        family = [c for c in out if (c["dataset"], c["recipe"], c["baseline"]) == key]
        for c, adjusted in zip(family, stats.holm([c["p"] for c in family])):
            c.update(p_holm=adjusted, family_size=len(family))
    return out


def crossing_epoch(history: list[dict[str, Any]], threshold: float) -> float | None:
    """When validation accuracy first reaches ``threshold``, in epochs: linear between the evaluations around the
    crossing (an epoch is too coarse a unit), the first epoch when it is already there, None when never."""
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
    """"BatchNorm reduces the epochs needed to converge", measured: per course-ablation row and seed, the
    `crossing_epoch` of ``threshold``, and Welch's test of each row against "none" on those that reached it."""
    rows = {}
    for variant in ABLATION:
        if records := _seed_records(Path(runs) / "mnist" / "course" / variant):
            rows[variant] = {"variant": variant, "label": label(variant), "threshold": threshold,
                             "epochs": [crossing_epoch(m["history"], threshold) for m in records],
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


def _matched(short: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """``short`` on the twice-the-epochs row's seeds only, so both budgets compare the same seeds; its seed std
    stays that of all its seeds (the noise scale the gain is judged against)."""
    keep = [i for i, s in enumerate(short["seeds"]) if s in seeds]
    val, test = ([short[k][i] for i in keep] for k in ("val_acc", "test_acc"))
    learned = stats.learned(test, test)
    return {**short, "val_mean": stats.mean_std(stats.learned(val, test))[0], "mean": stats.mean_std(learned)[0],
            "learned_acc": learned}


def convergence(summary: dict[str, Any], doubled: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model with a "2x epochs" row: did twice the epochs raise the mean (same seeds) by more than the std?"""
    out = []
    for dataset, rows in doubled.items():
        for key, long in rows.items():
            short = summary.get(dataset, {}).get(key)
            if key != "best_variant" and short and short["val_mean"] is not None and long["val_mean"] is not None:
                out.append({"dataset": dataset, "variant": long["variant"], "label": label(long["variant"]),
                            "seeds": long["seeds"], **stats.converged(_matched(short, long["seeds"]), long)})
    return out


def study_environment(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The one environment the study's runs were trained in (torch, device), the number of sittings it took and
    their wall time summed. More than one environment is an error: the arms must not differ in machine or software."""
    envs = {(e["torch"], e["device_type"]) for e in map(_recorded_environment, records)}
    if len(envs) > 1:
        raise MnistLibError(f"the runs come from {len(envs)} environments ({sorted(envs)}): "
                            f"retrain them in one (python -m mnist_lib report reuses only this one's runs)")
    spans = sorted((m["finished_at"] - sum(e["seconds"] for e in m["history"]), m["finished_at"])
                   for m in records if "finished_at" in m)
    sittings: list[list[float]] = []
    for start, end in spans:
        if not sittings or start - sittings[-1][1] > SITTING_GAP_SECONDS:
            sittings.append([start, end])
        sittings[-1][1] = max(sittings[-1][1], end)
    env = records[0]["environment"] if records else {}
    return {**_recorded_environment({"environment": env}), "device_name": env.get("device_name"),
            "python": env.get("python"), "runs": len(records),
            "sittings": len(sittings), "wall_seconds": round(sum(e - s for s, e in sittings), 1) if sittings else None,
            "first": spans[0][0] if spans else None, "last": spans[-1][1] if spans else None}


def study_summary(runs: str | Path, **extra: Any) -> dict[str, Any]:
    """The whole study from its run folders: the main rows per dataset, the "2x", "stability" and learning-rate
    groups, the comparisons and checks made on them, plus ``extra`` (wall time, device, plan)."""
    runs = Path(runs)
    rates = sorted((runs / "lr").glob("*"), key=lambda p: float(p.name))  # lr/<learning rate>/
    summary: dict[str, Any] = {**summarize(runs), **{group: summarize(runs / group) for group in ("2x", "stability")},
                               "lr_sweep": {p.name: summarize(p) for p in rates}}
    summary.update(comparisons=comparisons(summary), convergence=convergence(summary, summary["2x"]),
                   epochs_to_accuracy=epochs_to_accuracy(runs), lr_comparisons=lr_sweep(summary),
                   environment=study_environment([read_json(p) for p in sorted(runs.rglob(METRICS))]))
    return {**summary, **extra}


def write_summary(runs: str | Path, path: str | Path, **extra: Any) -> dict[str, Any]:
    summary = study_summary(runs, **extra)
    if not any(d in summary for d in DATASETS):
        raise MnistLibError(f"no finished runs under {runs}: run the model notebooks (or `make report`) first")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(path, summary)
    return summary


read_summary = read_json  # summary.json, as write_summary wrote it
