"""Numbers into text: formatting, comparisons and the tables the comparison and report notebooks
show and the README repeats. No paragraphs: the prose lives in the notebooks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from mnist_lib import stats
from mnist_lib.config import DATASET_LABELS, TrainConfig
from mnist_lib.files import read_json
from mnist_lib.registry import ABLATION, HEADLINE, label, summary_key

# The study's targets: mean test accuracy over seeds (epoch chosen on validation), at most 62k parameters.
TARGETS = [
    ("mnist", "lenet5", "LeNet-5", 99.50),
    ("mnist", "lenet5_regularized", "LeNet5_Regularized", 99.50),
    ("mnist", "custom_mlp", "CustomMLP", 99.00),
    ("mnist", "best_variant", "best variant", 99.60),
    ("fashion-mnist", "best_variant", "Fashion-MNIST best variant", 91.0),
]
PARAM_LIMIT = 62_000


def fmt_pm(mean: float, std: float | None, n: int) -> str:
    """'99.12 ± 0.05' over several seeds, '99.12' for one."""
    return f"{mean:.2f}" if n < 2 or std is None else f"{mean:.2f} ± {std:.2f}"


def seconds_text(seconds: float) -> str:
    """'0.25 s', '42.0 s', '24.1 min' or '1.50 h'."""
    if seconds < 90:
        return f"{seconds:.{2 if seconds < 1 else 1}f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.2f} h"


TABLE_CHARS = 95  # about the digits of a \footnotesize line of the PDF's text width, less column padding


def markdown_table(frame, wrap: int = 28) -> str:
    """A DataFrame as a markdown pipe table. The separator's dashes set the relative column widths
    pandoc gives a wide table in the PDF (a table wider than 72 characters fills the text width and
    wraps its cells). Number-like columns ("99.49 ± 0.04", "+0.26 [+0.14, +0.38]") and columns of
    short cells get their full width, so they never wrap; text columns share what is left of a
    line, at least their longest word, at most ``wrap`` characters."""
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
    text = [i for i, f in enumerate(fixed) if not f]
    for i in text:
        widths[i] = max(word[i], min(min(longest[i], wrap) + 1, left // len(text)))
    rule = ["-" * (w - 1) + ":" if all(map(_looks_numeric, c)) else "-" * w for w, c in zip(widths, cols)]
    lines = ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in [header, *rows]]
    return "\n".join([lines[0], "|" + "|".join(rule) + "|", *lines[1:]])


def _word_width(texts: Iterable[str]) -> int:
    """The dashes a column needs for its longest word: x1.25, as a proportional font's capitals and
    underscores are wider than the monospace count; +1 only, as pandoc's LaTeX columns add their
    padding themselves."""
    return math.ceil(1.25 * max(len(w) for t in texts for w in (t.split() or [""]))) + 1


def _looks_numeric(text: str) -> bool:
    t = text.replace(",", "").replace("±", " ").replace("+", "").replace("%", "").split()
    try:
        return bool(t) and all(float(x) == float(x) for x in t)
    except ValueError:
        return False


def display_name(entry: Mapping[str, Any]) -> str:
    return label(entry["variant"])


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


def pm_values(values: Sequence[float]) -> str:
    """'mean ± std' of per-seed values ('-' for none)."""
    return fmt_pm(*stats.mean_std(values), len(values)) if values else "-"


def results_table(summary: Mapping[str, Any], dataset: str = "mnist", keys: Iterable[str] | None = None) -> str:
    """results_frame as markdown, with the columns that are the same on every row (recipe,
    seeds, epochs) said once in a line above instead, so the table fits a page."""
    frame = results_frame(summary, dataset, keys)
    if frame.empty:
        return f"*No runs on {dataset}.*"
    same = [c for c in ("recipe", "seeds", "epochs") if frame[c].nunique() == 1]
    note = ", ".join(f"{c} {frame[c].iloc[0]}" for c in same)
    return (f"All rows: {note}.\n\n" if note else "") + markdown_table(frame.drop(columns=same))


def ordered_keys(entries: Mapping[str, Any]) -> list[str]:
    """Summary keys in reading order: project recipe first; the three models, other variants, the ablation."""
    def rank(key: str) -> tuple:
        v = entries[key]["variant"]
        group = 0 if v in HEADLINE else 2 if v in ABLATION else 1
        order = HEADLINE.index(v) if v in HEADLINE else ABLATION.index(v) if v in ABLATION else 0
        return (entries[key]["recipe"] != "tuned", group, order, v)

    return sorted((k for k in entries if k != "best_variant"), key=rank)


def row_name(entry: Mapping[str, Any]) -> str:
    """How a table names a summary entry: the model's name, or 'ablation: <label>'."""
    v = entry["variant"]
    return display_name(entry) if v in HEADLINE else f"ablation: {entry['label']}" if v in ABLATION else entry["label"]


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


def stability_frame(summary: Mapping[str, Any], dataset: str = "mnist"):
    """The stability sweep: runs, failed runs, and the spread of the rest."""
    return pd.DataFrame([{"variant": e["label"], "runs": str(len(e["test_acc"])), "failed": str(e["failed"]),
                          "test acc (%)": fmt_row(e), "lowest (%)": f"{min(e['test_acc']):.2f}"}
                         for e in summary.get("stability", {}).get(dataset, {}).values() if "chosen_by" not in e])


def recipes_frame():
    """The two recipes side by side, from config.PRESETS."""
    rows = []
    for name in ("course", "tuned"):
        c = TrainConfig.from_preset(name)
        schedule = {"none": f"constant {c.lr:g}", "onecycle": f"one-cycle, peak {c.lr:g}",
                    "cosine": f"cosine from {c.lr:g}"}[c.schedule]
        rows.append({"recipe": name,
                     "optimizer": f"SGD, momentum {c.momentum:g}" + (", Nesterov" if c.nesterov else ""),
                     "lr": schedule, "batch": str(c.batch_size), "weight decay": f"{c.weight_decay:g}",
                     "grad clip": "-" if c.grad_clip is None else f"norm {c.grad_clip:g}",
                     "augmentation": "none" if not c.augment else f"shifts ±{c.augment_shift:g} px"
                     + (f", rotations ±{c.augment_degrees:g}°" if c.augment_mode == "affine" else "")})
    return pd.DataFrame(rows)


def fmt_row(entry: Mapping[str, Any] | None) -> str:
    """A row's test accuracy over the runs that learned, with failed runs counted beside it."""
    if entry is None:
        return "-"
    if entry["mean"] is None:
        return f"all {entry['failed']} runs failed"
    failed = f" ({entry['failed']} failed)" if entry["failed"] else ""
    return fmt_pm(entry["mean"], entry["std"], len(entry["learned_acc"])) + failed


def fmt_diff(c: Mapping[str, Any] | None) -> str:
    """'+0.12 [+0.03, +0.21]': a difference in points with its 95% confidence interval ('-': none)."""
    if not c or c["diff"] is None:
        return "-"
    ci = f" [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]" if c.get("ci95") else ""
    return f"{c['diff']:+.2f}{ci}"


def fmt_p(p: float | None) -> str:
    return "-" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def ablation_frame(summary: Mapping[str, Any], variants: Sequence[str], recipe: str, dataset: str = "mnist"):
    """One row per variant under one recipe: mean ± std test accuracy (failed runs counted), the
    train-test gap, and against the first variant (the baseline) the difference with its 95% CI,
    Welch's p-value and the p-value Holm-adjusted over the rows."""
    entries = summary.get(dataset, {})
    present = {v: entries[summary_key(v, recipe)] for v in variants if summary_key(v, recipe) in entries}
    base = entries.get(summary_key(variants[0], recipe))
    tests = {v: stats.compare_rows(e, base) for v, e in present.items() if base and v != variants[0]}
    holm = dict(zip(tests, stats.holm([t["p"] for t in tests.values()])))
    return pd.DataFrame([{"regularization": label(v), "test acc (%)": fmt_row(e),
                          "gap": "-" if e["gap_mean"] is None else f"{e['gap_mean']:+.2f}",
                          "vs none [95% CI]": fmt_diff(tests[v]) if v in tests else "baseline",
                          "p": fmt_p(tests[v]["p"]) if v in tests else "-", "Holm p": fmt_p(holm.get(v))}
                         for v, e in present.items()])


def comparisons_frame(summary: Mapping[str, Any]):
    """The saved comparisons (summary["comparisons"]) as a table."""
    return pd.DataFrame([{"dataset": DATASET_LABELS[c["dataset"]], "recipe": c["recipe"], "row": c["label"],
                          "baseline": c["baseline_label"], "difference [95% CI]": fmt_diff(c), "p": fmt_p(c["p"]),
                          "verdict": c["verdict"], "gap (row / baseline)": "-" if None in (c["gap"], c["baseline_gap"])
                          else f"{c['gap']:+.2f} / {c['baseline_gap']:+.2f}"}
                         for c in summary.get("comparisons", [])])


def histories(runs_dir: str | Path, dataset: str, recipe: str, variant: str,
              seeds: Sequence[int]) -> list[list[dict[str, Any]]]:
    """The per-epoch histories of these seeds of a variant, those that finished (read from metrics.json)."""
    paths = [Path(runs_dir) / dataset / recipe / variant / f"seed{s}" / "metrics.json" for s in seeds]
    return [read_json(p)["history"] for p in paths if p.exists()]


