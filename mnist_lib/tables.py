"""report/summary.json as the notebooks, the report and the README show it: numbers as text, the
tables, and the rows of the summary's figures. No prose (it lives in the notebooks), no torch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from mnist_lib import stats
from mnist_lib.config import DATASET_LABELS, TrainConfig
from mnist_lib.files import read_json
from mnist_lib.registry import ABLATION, DEFAULT_RECIPE, HEADLINE, VARIANTS, label, summary_key

# The study's targets: mean test accuracy over seeds (epoch chosen on validation), at most 62k parameters.
TARGETS = [
    ("mnist", "lenet5", "LeNet-5", 99.50),
    ("mnist", "lenet5_regularized", "LeNet5_Regularized", 99.50),
    ("mnist", "custom_mlp", "CustomMLP", 99.00),
    ("mnist", "best_variant", "best variant", 99.60),
    ("fashion-mnist", "best_variant", "Fashion-MNIST best variant", 91.0),
]
PARAM_LIMIT = 62_000


def fmt_pm(mean: float, std: float | None) -> str:
    """'99.12 ± 0.05', or '99.12' without a std (one seed)."""
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def pm_values(values: Sequence[float]) -> str:
    """'mean ± std' of per-seed values ('-' for none)."""
    return fmt_pm(*stats.mean_std(values)) if values else "-"


def fmt_row(entry: Mapping[str, Any] | None) -> str:
    """A row's test accuracy over the runs that learned, with failed runs counted beside it."""
    if entry is None or entry["mean"] is None:
        return "-" if entry is None else f"all {entry['failed']} runs failed"
    return fmt_pm(entry["mean"], entry["std"]) + (f" ({entry['failed']} failed)" if entry["failed"] else "")


def fmt_diff(c: Mapping[str, Any] | None) -> str:
    """'+0.12 [+0.03, +0.21]': a difference in points with its 95% confidence interval ('-': none)."""
    if not c or c["diff"] is None:
        return "-"
    ci = f" [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]" if c.get("ci95") else ""
    return f"{c['diff']:+.2f}{ci}"


def fmt_p(p: float | None) -> str:
    return "-" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def welch_cells(test: Mapping[str, Any] | None, column: str = "vs none [95% CI]", absent: str = "baseline") -> dict:
    """A Welch test's two cells, the difference [95% CI] under ``column`` and "p" (``absent`` and '-' without one)."""
    return {column: fmt_diff(test) if test else absent, "p": fmt_p(test["p"]) if test else "-"}


def seconds_text(seconds: float) -> str:
    """'0.25 s', '42.0 s', '24.1 min' or '1.50 h'."""
    if seconds < 90:
        return f"{seconds:.{2 if seconds < 1 else 1}f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.2f} h"


TABLE_CHARS = 95  # about the digits of a \footnotesize line of the PDF's text width, less column padding


def markdown_table(frame, wrap: int = 28) -> str:
    """A DataFrame as a markdown pipe table whose dashes set the column widths pandoc gives a wide table in the
    PDF (over 72 characters it fills the text width, wrapping cells): number-like ("+0.26 [+0.14, +0.38]") and
    short columns get their full width, never wrapping; text columns share the rest, at most ``wrap`` each."""
    if frame.empty:
        return "*(no rows)*"
    header = [str(c) for c in frame.columns]
    rows = [["-" if v is None else str(v) for v in row] for row in frame.itertuples(index=False)]
    cols = [list(c) for c in zip(*rows)]
    longest = [max(map(len, c)) for c in cols]
    word = [_word_width([*c, h]) for c, h in zip(cols, header)]
    # numbers, signs, brackets, and short cells ("24.1 min", "helps"): kept whole
    fixed = [n <= 12 or not any(ch.isalpha() for t in c for ch in t) for c, n in zip(cols, longest)]
    widths = [max(_word_width([h]), n + 2) if f else w for h, n, w, f in zip(header, longest, word, fixed)]
    left = TABLE_CHARS - sum(w for w, f in zip(widths, fixed) if f)
    text = sorted((i for i, f in enumerate(fixed) if not f), key=lambda i: min(longest[i], wrap))
    for k, i in enumerate(text):  # the narrowest first: what it leaves over goes to the wider ones
        widths[i] = max(word[i], min(min(longest[i], wrap) + 1, left // (len(text) - k)))
        left -= widths[i]
    rule = ["-" * (w - 1) + ":" if all(map(_looks_numeric, c)) else "-" * w for w, c in zip(widths, cols)]
    lines = ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in [header, *rows]]
    return "\n".join([lines[0], "|" + "|".join(rule) + "|", *lines[1:]])


def _word_width(texts: Iterable[str]) -> int:
    """The dashes a column needs for its longest word: x1.25, as a proportional font's capitals and
    underscores are wider than the monospace count; +1 only, as pandoc's LaTeX columns add their padding."""
    return math.ceil(1.25 * max(len(w) for t in texts for w in (t.split() or [""]))) + 1


def _looks_numeric(text: str) -> bool:
    t = text.replace(",", "").replace("±", " ").replace("+", "").replace("%", "").split()
    try:
        return bool(t) and all(float(x) == float(x) for x in t)
    except ValueError:
        return False


# --------------------------------------------------------------------------- the tables

def results_frame(summary: Mapping[str, Any], dataset: str = "mnist", keys: Iterable[str] | None = None):
    """Rows of one dataset: parameters, epochs, seeds (failed ones counted), and the kept models'
    validation, test and clean training accuracy (mean ± std over the runs that learned), gap."""
    entries = summary.get(dataset, {})
    rows = []
    for key in [k for k in (keys or ordered_keys(entries)) if k in entries]:
        e = entries[key]
        rows.append({"model": f"best: {row_name(e)}" if key == "best_variant" else row_name(e),
                     "recipe": e["recipe"], "params": f"{e['params']:,}", "epochs": str(e["epochs"]),
                     "seeds": str(len(e["test_acc"])) + (f" ({e['failed']} failed)" if e["failed"] else ""),
                     "val acc (%)": pm_values(stats.learned(e["val_acc"], e["test_acc"])), "test acc (%)": fmt_row(e),
                     "train acc (%)": pm_values(stats.learned(e["train_eval_acc"], e["test_acc"])),
                     "gap": "-" if e["gap_mean"] is None else f"{e['gap_mean']:+.2f}"})
    return pd.DataFrame(rows)


def results_table(summary: Mapping[str, Any], dataset: str = "mnist") -> str:
    """Every row of results_frame as markdown, the columns that are the same on every row (recipe, seeds,
    epochs) said once in a line above instead, so the table fits a page."""
    frame = results_frame(summary, dataset)
    if frame.empty:
        return f"*No runs on {dataset}.*"
    same = [c for c in ("recipe", "seeds", "epochs") if frame[c].nunique() == 1]
    note = ", ".join(f"{c} {frame[c].iloc[0]}" for c in same)
    return (f"All rows: {note}.\n\n" if note else "") + markdown_table(frame.drop(columns=same))


def ordered_keys(entries: Mapping[str, Any]) -> list[str]:
    """Summary keys in reading order: project recipe first, then the registry's (the three models, the other
    variants, the ablation)."""
    order = list(VARIANTS)
    return sorted((k for k in entries if k != "best_variant"),
                  key=lambda k: (entries[k]["recipe"] != DEFAULT_RECIPE, order.index(entries[k]["variant"])))


def row_name(entry: Mapping[str, Any]) -> str:
    """How a table names a summary entry: its label, 'ablation: <label>' for an ablation row."""
    return f"ablation: {entry['label']}" if entry["variant"] in ABLATION else entry["label"]


def targets_frame(summary: Mapping[str, Any]):
    """The study's targets: the measured mean ± std against each, met or missed."""
    rows = []
    for dataset, key, name, target in TARGETS:
        e = summary.get(dataset, {}).get(key)
        met = e is not None and e["mean"] is not None and e["mean"] >= target and e["params"] <= PARAM_LIMIT
        rows.append({"target": f"{name} ({row_name(e)})" if e and key == "best_variant" else name,
                     "at least (%)": f"{target:.2f}", "measured (%)": fmt_row(e) if e else "not run",
                     "result": "met" if met else "missed" if e else "not run"})
    return pd.DataFrame(rows)


def stability_frame(summary: Mapping[str, Any]):
    """The stability sweep (on MNIST): runs, failed runs, and the spread of the rest."""
    return pd.DataFrame([{"variant": e["label"], "runs": str(len(e["test_acc"])), "failed": str(e["failed"]),
                          "test acc (%)": fmt_row(e), "lowest (%)": f"{min(e['test_acc']):.2f}"}
                         for e in summary.get("stability", {}).get("mnist", {}).values() if "chosen_by" not in e])


def recipe_cells(c: TrainConfig) -> dict[str, str]:
    """A config's recipe as table cells: a row of the recipes table, a model notebook's description."""
    schedule = {"none": "constant {:g}", "onecycle": "one-cycle, peak {:g}", "cosine": "cosine from {:g}"}[c.schedule]
    sgd = f"SGD, momentum {c.momentum:g}" + (", Nesterov" if c.nesterov else "")
    return {"optimizer": sgd if c.optimizer == "sgd" else "AdamW", "lr": schedule.format(c.lr),
            "batch": str(c.batch_size), "weight decay": f"{c.weight_decay:g}",
            "grad clip": "-" if c.grad_clip is None else f"norm {c.grad_clip:g}",
            "augmentation": "none" if not c.augment else f"shifts ±{c.augment_shift:g} px"
            + (f", rotations ±{c.augment_degrees:g}°" if c.augment_mode == "affine" else "")}


def recipes_frame():
    """The two recipes side by side, from config.PRESETS."""
    return pd.DataFrame([{"recipe": name, **recipe_cells(TrainConfig.from_preset(name))}
                         for name in ("course", "tuned")])


def ablation_frame(summary: Mapping[str, Any], variants: Sequence[str], recipe: str, dataset: str = "mnist"):
    """One row per variant under one recipe: test accuracy (failed runs counted), the train-test gap and, against
    the first variant (the baseline), the difference [95% CI], Welch's p and Holm's adjusted p over the rows."""
    entries = summary.get(dataset, {})
    present = {v: entries[summary_key(v, recipe)] for v in variants if summary_key(v, recipe) in entries}
    base = entries.get(summary_key(variants[0], recipe))
    tests = {v: stats.compare_rows(e, base) for v, e in present.items() if base and v != variants[0]}
    holm = dict(zip(tests, stats.holm([t["p"] for t in tests.values()])))
    return pd.DataFrame([{"regularization": label(v), "test acc (%)": fmt_row(e),
                          "gap": "-" if e["gap_mean"] is None else f"{e['gap_mean']:+.2f}",
                          **welch_cells(tests.get(v)), "Holm p": fmt_p(holm.get(v))} for v, e in present.items()])


def comparisons_frame(summary: Mapping[str, Any]):
    """The saved comparisons (summary["comparisons"]) as a table; the verdict after Holm's adjustment of its family."""
    return pd.DataFrame([{"dataset": DATASET_LABELS[c["dataset"]], "recipe": c["recipe"], "row": c["label"],
                          "baseline": c["baseline_label"], **welch_cells(c, "difference [95% CI]"),
                          "Holm p": fmt_p(c.get("p_holm")),
                          "verdict": stats.verdict({**c, "p": c.get("p_holm", c["p"])}),
                          "gap (row / baseline)": "-" if None in (c["gap"], c["baseline_gap"])
                          else f"{c['gap']:+.2f} / {c['baseline_gap']:+.2f}"}
                         for c in summary.get("comparisons", [])])


def lr_frame(summary: Mapping[str, Any]):
    """Per learning rate: each variant's test accuracy (failed runs counted), BatchNorm minus none (95% CI, p) where
    no run failed: without its failed runs a mean stands for the survivors only."""
    failed = lambda e: any(r and r["failed"] for r in e["rows"].values())  # noqa: E731
    return pd.DataFrame([{"lr": f"{e['lr']:g}", **{label(v): fmt_row(r) for v, r in e["rows"].items()},
                          **welch_cells(None if failed(e) else e["comparison"], "BatchNorm − none [95% CI]", "-")}
                         for e in summary.get("lr_comparisons", [])])


def epochs_frame(summary: Mapping[str, Any]):
    """Epochs to the validation threshold per course-ablation row, against none (Holm over the rows tested)."""
    rows = summary.get("epochs_to_accuracy", [])
    holm = stats.holm([r["welch"]["p"] if r["welch"] else None for r in rows])
    return pd.DataFrame([{"regularization": r["label"],
                          "epochs to reach it": pm_values([e for e in r["epochs"] if e is not None]),
                          "not reached": f"{r['not_reached']} of {len(r['epochs'])}", **welch_cells(r["welch"]),
                          "Holm p": fmt_p(h)} for r, h in zip(rows, holm)])


def convergence_frame(summary: Mapping[str, Any]):
    """The "twice the epochs" check on validation accuracy, test accuracy beside it."""
    return pd.DataFrame([{"dataset": DATASET_LABELS[c["dataset"]], "model": c["label"],
                          "epochs": f"{c['epochs']} / {c['epochs_2x']}",
                          "val acc (%)": f"{c['val_mean']:.2f} / {c['val_mean_2x']:.2f}", "gain": f"{c['gain']:+.2f}",
                          "seed std": "-" if c["val_std"] is None else f"{c['val_std']:.2f}",
                          "converged": "yes" if c["converged"] else "no",
                          "test acc (%)": f"{c['mean']:.2f} / {c['mean_2x']:.2f}"}
                         for c in sorted(summary.get("convergence", []), key=lambda c: c["dataset"] != "mnist")])


def fit_frame(summary: Mapping[str, Any]):
    """Each headline model's clean training accuracy, test accuracy and gap at the study's epochs and at twice as
    many: whether it under- or overfits, and what longer training does to it."""
    clean = lambda e: stats.mean_std(stats.learned(e["train_eval_acc"], e["test_acc"]))[0]  # noqa: E731
    pairs = [(d, k, summary.get(d, {}).get(k), summary.get("2x", {}).get(d, {}).get(k))
             for d in DATASET_LABELS for k in HEADLINE]
    return pd.DataFrame([{"dataset": DATASET_LABELS[d], "model": label(k), "epochs": f"{e['epochs']} / {e2['epochs']}",
                          "train acc (%)": f"{clean(e):.2f} / {clean(e2):.2f}",
                          "test acc (%)": f"{e['mean']:.2f} / {e2['mean']:.2f}",
                          "gap": f"{e['gap_mean']:+.2f} / {e2['gap_mean']:+.2f}"} for d, k, e, e2 in pairs if e and e2])


def plan_frame(summary: Mapping[str, Any]):
    """The executed plan: what each step trains (display names), its budget and its estimated cost."""
    best = summary.get("mnist", {}).get("best_variant", {}).get("variant")
    best = "none: it has a row of its own" if best in HEADLINE else label(best) if best else "-"
    notes = {"2x": "2× epochs", "stability": "stability sweep", "": ""}
    return pd.DataFrame([{"dataset": DATASET_LABELS[s["dataset"]], "recipe": s["recipe"],
                          "trains": ", ".join(label(v) if v in VARIANTS else f"the best MNIST variant ({best})"
                                              for v in s["variants"]),
                          "note": notes.get(s["group"], f"lr {s['group'].split('/')[-1]}"), "epochs": str(s["epochs"]),
                          "seeds": str(len(s["seeds"])), "images": f"{(s['limit'] or 55_000):,}",
                          "estimate": seconds_text(s["estimate_seconds"])} for s in summary.get("plan", [])])


def seeds_frame(summary: Mapping[str, Any]):
    """Every seed's test accuracy of the rows the verdicts rest on (five seeds or more; "-": diverged)."""
    return pd.DataFrame([{"dataset": DATASET_LABELS[d], "row": label(e["variant"]), "recipe": e["recipe"],
                          **{f"seed {s}": "-" if a is None else f"{a:.2f}" for s, a in zip(e["seeds"], e["test_acc"])}}
                         for d in ("mnist", "fashion-mnist") for k, e in summary.get(d, {}).items()
                         if k != "best_variant" and len(e["test_acc"]) >= 5]).fillna("")


# --------------------------------------------------------------------------- the run records and the figures' rows

def records(runs_dir: str | Path, summary: Mapping[str, Any], key: str, dataset: str = "mnist") -> list[dict[str, Any]]:
    """The metrics.json of every finished seed of a row under the project's recipe."""
    seeds = summary.get(dataset, {}).get(key, {}).get("seeds", [])
    paths = [Path(runs_dir) / dataset / DEFAULT_RECIPE / key / f"seed{s}" / "metrics.json" for s in seeds]
    return [read_json(p) for p in paths if p.is_file()]


def _compared(summary: Mapping[str, Any], dataset: str) -> list[str]:
    """The three models, plus the best MNIST variant when it is another one (project recipe)."""
    entries = summary.get(dataset, {})
    best = summary.get("mnist", {}).get("best_variant", {}).get("variant")
    return [k for k in HEADLINE if k in entries] + ([best] if best not in HEADLINE and best in entries else [])


def full_result_histories(summary: Mapping[str, Any], runs_dir: str | Path, dataset: str = "mnist") -> dict[str, list]:
    """label -> per-seed histories of the compared models, for plots.full_result_figure."""
    found = {label(k): [m["history"] for m in records(runs_dir, summary, k, dataset)]
             for k in _compared(summary, dataset)}
    return {name: runs for name, runs in found.items() if runs}


def ablation_rows(summary: Mapping[str, Any], variants: Sequence[str], recipes: Sequence[str],
                  dataset: str = "mnist") -> list[dict[str, Any]]:
    """Rows for plots.mean_std_figure: one per variant and recipe with a run that did not diverge
    (a diverged run has no test accuracy; the tables count it)."""
    entries = summary.get(dataset, {})
    rows = [{"label": label(v), "values": [a for a in entries[summary_key(v, r)]["test_acc"] if a is not None],
             "recipe": r} for v in variants for r in recipes if summary_key(v, r) in entries]
    return [row for row in rows if row["values"]]


def dataset_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows for plots.mean_std_figure comparing MNIST and Fashion-MNIST per model."""
    return [{"label": summary[d][key]["label"], "dataset": DATASET_LABELS[d],
             "values": [a for a in summary[d][key]["test_acc"] if a is not None]}  # a diverged run has none
            for key in _compared(summary, "fashion-mnist") for d in ("mnist", "fashion-mnist")
            if key in summary.get(d, {})]
