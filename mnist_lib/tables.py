"""Numbers into text: formatting, comparisons and the tables the comparison and report
notebooks show and the README repeats. No paragraphs: the prose lives in the notebooks."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from mnist_lib.errors import MnistLibError

MODEL_NOTEBOOKS = ["lenet5", "custom_mlp", "lenet5_regularized"]

# The targets of the project's issue: mean test accuracy over seeds, MNIST, at most 62k parameters.
TARGETS = [
    ("lenet5", "LeNet-5", 99.40),
    ("lenet5_regularized", "LeNet5_Regularized", 99.45),
    ("custom_mlp", "CustomMLP", 98.50),
    ("best_variant", "best variant (at most 62k parameters)", 99.55),
]
PARAM_LIMIT = 62_000
FAILED_RUN = 50.0  # test accuracy (%) below which a run did not learn (chance is 10%)


# --------------------------------------------------------------------------- formatting

def fmt_pm(mean: float, std: float | None, n: int, digits: int = 2) -> str:
    """'99.12 ± 0.05' over several seeds, '99.12' for one."""
    if n < 2 or std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def entry_pm(entry: Mapping[str, Any], digits: int = 2) -> str:
    """A summary entry's test accuracy as mean ± std."""
    return fmt_pm(entry["mean"], entry["std"], len(entry["test_acc"]), digits)


def seconds_text(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def markdown_table(frame, wrap: int = 28) -> str:
    """A DataFrame as a markdown pipe table. The separator's dashes set the relative column
    widths pandoc gives a wide table in the PDF (a table wider than 72 characters fills the
    text width and wraps its cells), so each column gets room for its longest unbreakable word
    plus padding, and long text columns wrap at about ``wrap`` characters."""
    header = [str(c) for c in frame.columns]
    rows = [["-" if v is None else str(v) for v in row] for row in frame.itertuples(index=False)]

    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    widths = []
    for i, name in enumerate(header):
        cells = [r[i] for r in rows]
        longest_word = max(len(w) for text in cells + [name] for w in (text.split() or [""]))
        longest_cell = max([len(c) for c in cells] + [longest_word])
        # x1.25: a proportional font's capitals and underscores are wider than the monospace count
        widths.append(max(math.ceil(1.25 * longest_word), min(longest_cell, wrap)) + 3)
    numeric = [all(_looks_numeric(r[i]) for r in rows) and rows != [] for i in range(len(header))]
    lines = ["| " + " | ".join(escape(h) for h in header) + " |",
             "|" + "|".join(("-" * (w - 1) + ":") if num else ("-" * w) for w, num in zip(widths, numeric)) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _looks_numeric(text: str) -> bool:
    t = text.replace(",", "").replace("±", " ").replace("+", "").replace("%", "").split()
    try:
        return bool(t) and all(float(x) == float(x) for x in t)
    except ValueError:
        return False


def display_name(entry: Mapping[str, Any]) -> str:
    from mnist_lib.models import DISPLAY_NAMES

    variant = entry["variant"]
    return DISPLAY_NAMES.get(variant) or entry.get("label") or variant


# --------------------------------------------------------------------------- comparisons

@dataclass
class Comparison:
    a: str
    b: str
    diff: float  # mean of a minus mean of b, in points
    spread: float  # std of a + std of b
    seeds: int  # the smaller seed count

    @property
    def tie(self) -> bool:
        return self.seeds >= 2 and abs(self.diff) <= self.spread

    def sentence(self, unit: str = "points") -> str:
        if self.seeds < 2:
            side = "above" if self.diff > 0 else "below" if self.diff < 0 else "level with"
            return f"{self.a} is {abs(self.diff):.2f} {unit} {side} {self.b} (one seed: no spread to test against)"
        if self.tie:
            return (f"{self.a} and {self.b} tie: {self.diff:+.2f} {unit}, within the seed spread "
                    f"({self.spread:.2f})")
        verb = "beats" if self.diff > 0 else "trails"
        return f"{self.a} {verb} {self.b} by {abs(self.diff):.2f} {unit}, more than the seed spread ({self.spread:.2f})"


def compare(a: Mapping[str, Any], b: Mapping[str, Any], name_a: str | None = None,
            name_b: str | None = None) -> Comparison:
    """Compare two summary entries' mean test accuracy against their seed spread."""
    return Comparison(name_a or a["label"], name_b or b["label"], a["mean"] - b["mean"],
                      (a["std"] or 0.0) + (b["std"] or 0.0), min(len(a["test_acc"]), len(b["test_acc"])))


# --------------------------------------------------------------------------- tables

def results_frame(summary: Mapping[str, Any], dataset: str = "mnist", keys: Iterable[str] | None = None):
    """Every model's final numbers, mean ± std over seeds (the kept, best-validation epoch)."""
    import pandas as pd

    entries = summary.get(dataset, {})
    keys = [k for k in (keys or ordered_keys(entries)) if k in entries]
    rows = []
    for key in keys:
        e = entries[key]
        n = len(e["test_acc"])
        err = [100 - a for a in e["test_acc"]]
        val = [v for v in e["val_acc"] if v is not None]
        rows.append({
            "model": f"best variant: {row_name(e)}" if key == "best_variant" else row_name(e),
            "recipe": e["recipe"],
            "params": f"{e['params']:,}",
            "seeds": str(n),
            "epochs": str(e["epochs"]),
            "val acc (%)": fmt_pm(statistics.fmean(val), _std(val), n) if val else "-",
            "test acc (%)": entry_pm(e),
            "test error (%)": fmt_pm(statistics.fmean(err), _std(err), n),
            "test loss": fmt_pm(statistics.fmean(e["test_loss"]), _std(e["test_loss"]), n, 3),
        })
    return pd.DataFrame(rows)


def results_table(summary: Mapping[str, Any], dataset: str = "mnist", keys: Iterable[str] | None = None) -> str:
    """results_frame as markdown, with the columns that are the same on every row (recipe,
    seeds, epochs) said once in a line above instead, so the table fits a page."""
    frame = results_frame(summary, dataset, keys)
    if frame.empty:
        return f"*No runs on {dataset}.*"
    same = [c for c in ("recipe", "seeds", "epochs") if frame[c].nunique() == 1]
    note = ", ".join(f"{c} {frame[c].iloc[0]}" for c in same)
    table = markdown_table(frame.drop(columns=same))
    return (f"All rows: {note}; accuracy, error and loss of the kept (best-validation) epoch, "
            f"mean ± std over seeds.\n\n" if note else "") + table


def ordered_keys(entries: Mapping[str, Any]) -> list[str]:
    """Summary keys in reading order: the three models, the other variants, the ablation; the
    project's recipe before the course's."""
    from mnist_lib.experiments import ABLATION, SEED_MODELS

    def rank(key: str) -> tuple:
        e = entries[key]
        v = e["variant"]
        group = 0 if v in SEED_MODELS else 2 if v in ABLATION else 1
        order = SEED_MODELS.index(v) if v in SEED_MODELS else ABLATION.index(v) if v in ABLATION else 0
        return (e["recipe"] != "tuned", group, order, v)

    return sorted((k for k in entries if k != "best_variant"), key=rank)


def row_name(entry: Mapping[str, Any]) -> str:
    """How a table names a summary entry: the model's name, or 'ablation: <label>'."""
    from mnist_lib.experiments import ABLATION

    if entry["variant"] in MODEL_NOTEBOOKS:
        return display_name(entry)
    if entry["variant"] in ABLATION:
        return f"ablation: {entry['label']}"
    return entry["label"]


def _std(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def targets_frame(summary: Mapping[str, Any], dataset: str = "mnist"):
    """The project's targets: measured mean ± std against each, met or not met."""
    import pandas as pd

    entries = summary.get(dataset, {})
    rows = []
    for key, name, target in TARGETS:
        e = entries.get(key)
        if e is None:
            rows.append({"target": name, "min. test acc (%)": f"{target:.2f}", "measured (%)": "not run",
                         "params": "-", "result": "not run"})
            continue
        met = e["mean"] >= target and e["params"] <= PARAM_LIMIT
        label = f"{name}: {e['label']}" if key == "best_variant" else name
        rows.append({"target": label, "min. test acc (%)": f"{target:.2f}", "measured (%)": entry_pm(e),
                     "params": f"{e['params']:,}", "result": "met" if met else "not met"})
    return pd.DataFrame(rows)


def fmt_row(entry: Mapping[str, Any] | None, digits: int = 2) -> str:
    """A row's test accuracy over the runs that learned, with failed runs counted beside it."""
    if entry is None:
        return "-"
    if entry["mean"] is None:
        return f"all {entry['failed']} runs failed"
    text = fmt_pm(entry["mean"], entry["std"], len(entry["learned_acc"]), digits)
    return text + (f" ({entry['failed']} failed)" if entry["failed"] else "")


def fmt_diff(c: Mapping[str, Any]) -> str:
    """'+0.12 [+0.03, +0.21]': a difference in points with its 95% confidence interval."""
    if c["diff"] is None:
        return "-"
    ci = f" [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]" if c.get("ci95") else ""
    return f"{c['diff']:+.2f}{ci}"


def fmt_p(p: float | None) -> str:
    return "-" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def ablation_frame(summary: Mapping[str, Any], variants: Sequence[str], recipe: str, dataset: str = "mnist",
                   baseline: str | None = None):
    """One row per variant under one recipe: runs (failed), mean ± std test accuracy, the
    train-test gap, and the difference from the baseline (the first variant) with its 95% CI,
    Welch's p-value and the verdict."""
    import pandas as pd
    from mnist_lib.experiments import LABELS, summary_key
    from mnist_lib.stats import compare_rows

    baseline = baseline or variants[0]
    entries = summary.get(dataset, {})
    base = entries.get(summary_key(baseline, recipe))
    rows = []
    for variant in variants:
        e = entries.get(summary_key(variant, recipe))
        if e is None:
            continue
        c = compare_rows(e, base) if base is not None and variant != baseline else None
        rows.append({"regularization": LABELS.get(variant, variant), "runs": str(len(e["test_acc"])),
                     "test acc (%)": fmt_row(e),
                     "gap (points)": "-" if e["gap_mean"] is None else f"{e['gap_mean']:+.2f}",
                     "vs none [95% CI]": "baseline" if c is None else fmt_diff(c),
                     "p": "-" if c is None else fmt_p(c["p"]), "verdict": "-" if c is None else c["verdict"]})
    return pd.DataFrame(rows)


def comparisons_frame(summary: Mapping[str, Any], recipe: str | None = None, dataset: str | None = None):
    """The study's saved comparisons (summary["comparisons"]) as a table."""
    import pandas as pd

    rows = [{"recipe": c["recipe"], "row": c["label"], "baseline": c["baseline_label"],
             "difference [95% CI]": fmt_diff(c), "p": fmt_p(c["p"]), "verdict": c["verdict"],
             "gap (row / baseline)": "-" if c["gap"] is None or c["baseline_gap"] is None
             else f"{c['gap']:+.2f} / {c['baseline_gap']:+.2f}"}
            for c in summary.get("comparisons", [])
            if (recipe is None or c["recipe"] == recipe) and (dataset is None or c["dataset"] == dataset)]
    return pd.DataFrame(rows)


def timing_frame(summary: Mapping[str, Any]):
    """Time per model (training + evaluation, from the runs' per-epoch seconds)."""
    import pandas as pd

    rows = []
    for dataset in sorted(summary, key=lambda d: (d != "mnist", d)):
        entries = summary[dataset]
        for key in ordered_keys(entries):
            e = entries[key]
            n = len(e["test_acc"])
            rows.append({"dataset": dataset, "model": row_name(e),
                         "recipe": e["recipe"], "seeds": str(n), "epochs": str(e["epochs"]),
                         "total": seconds_text(e["seconds"]), "per seed": seconds_text(e["seconds"] / n),
                         "per epoch": seconds_text(e["seconds"] / n / e["epochs"]), "seconds": e["seconds"]})
    return pd.DataFrame(rows)


def histories(runs_dir: str | Path, dataset: str, recipe: str, variant: str,
              seeds: Sequence[int] | None = None) -> list[list[dict[str, Any]]]:
    """The per-epoch histories of a variant's finished seeds (read from metrics.json)."""
    from mnist_lib.files import read_json

    base = Path(runs_dir) / dataset / recipe / variant
    paths = [base / f"seed{s}" for s in seeds] if seeds is not None else sorted(base.glob("seed*"))
    return [read_json(p / "metrics.json")["history"] for p in paths if (p / "metrics.json").exists()]


