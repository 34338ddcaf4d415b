"""What the report notebook needs to read like a paper: numbered, captioned figures and tables
(the caption doubles as the HTML alt text), and short lookups into report/summary.json that
return "n/a" for a row a smaller run did not make. No paragraphs here: the prose is the notebook's."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, Markdown, display

from mnist_lib import tables
from mnist_lib.errors import MnistLibError
from mnist_lib.files import read_json
from mnist_lib.notebook import ablation_rows as notebook_rows
from mnist_lib.registry import ABLATION, LR_SWEEP, label

NA = "n/a"


class Claims:
    """The premises of the report's sentences. ``claims(premise, where)`` returns the premise, so
    a sentence is written for the outcome the study has and checked in code next to it. A broken
    premise stops a full render (``strict``) and names the sentence to rewrite; a quick render
    lists the broken ones in a box at the top (`box`) and goes on."""

    def __init__(self, strict: bool):
        self.strict, self.broken, self.handle = strict, [], None

    def box(self) -> None:
        """Where the list of broken premises goes (filled in as they break)."""
        self.handle = display(Markdown(""), display_id=True)

    def require(self, premise: bool, where: str) -> None:
        """A premise checked on its own line (nothing to print)."""
        self(premise, where)

    def __call__(self, premise: bool, where: str) -> bool:
        if premise:
            return True
        if self.strict:
            raise MnistLibError(f"the report's premise for {where} does not hold for these results: "
                                f"rewrite that sentence in notebooks/report.py")
        self.broken.append(where)
        if self.handle is not None:
            self.handle.update(Markdown(
                "> **Quick run: these sentences' premises do not hold for its numbers** (a full study must "
                "hold them all):\n>\n" + "\n".join(f"> - {w}" for w in self.broken)))
        return False


class Numbering:
    """Figure (or table) numbers in order of first mention, so the text can refer to a figure
    before it is shown: ``fig.ref("curves")`` -> "Figure 3", and ``fig.show("curves", ...)``
    later captions it "Figure 3: ..."."""

    def __init__(self, kind: str = "Figure"):
        self.kind = kind
        self.numbers: dict[str, int] = {}

    def number(self, key: str) -> int:
        return self.numbers.setdefault(key, len(self.numbers) + 1)

    def ref(self, key: str) -> str:
        return f"{self.kind} {self.number(key)}"

    def caption(self, key: str, text: str) -> str:
        return f"**{self.ref(key)}:** {text}"

    def show(self, key: str, path: str | Path, caption: str) -> None:
        """The saved figure, then its caption; the caption is also the image's alt text."""
        path = Path(path)
        if not path.is_file():
            display(Markdown(f"*{self.ref(key)} ({path.name}) was not produced by this run.*"))
            return
        _keep_together(_image_inches(path.read_bytes()))
        display(Image(filename=str(path)), metadata={"image/png": {"alt": f"{self.ref(key)}: {caption}"}})
        display(Markdown(self.caption(key, caption)))

    def show_figure(self, key: str, figure, caption: str) -> None:
        """A matplotlib figure (already saved where it belongs), then its caption; closed after."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=150, bbox_inches="tight", facecolor="white")
        plt.close(figure)
        _keep_together(_image_inches(buffer.getvalue()))
        display(Image(data=buffer.getvalue(), format="png"), metadata={"image/png": {"alt": f"{self.ref(key)}: {caption}"}})
        display(Markdown(self.caption(key, caption)))

    def table(self, key: str, frame, caption: str) -> None:
        """A numbered table: the caption above it, as papers do."""
        _keep_together(0.17 * (len(frame) + 2) + 0.6 + 0.16 * len(caption) / 90)
        display(Markdown(self.caption(key, caption) + "\n\n" + tables.markdown_table(frame)))


# The PDF's text width (letter paper, the template's margins) and the template's image limits.
TEXT_WIDTH_IN, IMAGE_WIDTH, IMAGE_MAX_HEIGHT_IN = 8.5 - 2 * 0.85, 0.92, 0.40 * 11


def _image_inches(png: bytes) -> float:
    """How tall a PNG prints in the PDF, with room for its caption below it."""
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    return min(TEXT_WIDTH_IN * IMAGE_WIDTH * height / width, IMAGE_MAX_HEIGHT_IN) + 0.55


def _keep_together(inches: float) -> None:
    """PDF only: start a new page unless this much room is left, so a float and its caption stay
    on one page (LaTeX's needspace; the HTML gets nothing)."""
    display({"text/latex": f"\\needspace{{{inches:.2f}in}}", "text/html": ""}, raw=True)


def row(summary: Mapping[str, Any], key: str, dataset: str = "mnist", group: str | None = None) -> dict | None:
    """A summary row (``group``: "2x" or "stability"), or None."""
    rows = summary.get(group, {}) if group else summary
    return rows.get(dataset, {}).get(key)


def pm(summary: Mapping[str, Any], key: str, dataset: str = "mnist", group: str | None = None) -> str:
    """A row's test accuracy as 'mean ± std' over the runs that learned."""
    r = row(summary, key, dataset, group)
    return tables.fmt_row(r) if r else NA


def mean(summary: Mapping[str, Any], key: str, dataset: str = "mnist", field: str = "mean") -> float | None:
    r = row(summary, key, dataset)
    return None if r is None else r.get(field)


def num(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None:
        return NA
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def comparison(summary: Mapping[str, Any], row_key: str, baseline: str, recipe: str = "tuned",
               dataset: str = "mnist") -> dict[str, Any]:
    """A saved Welch comparison, or an empty one whose fields read "n/a"."""
    for c in summary.get("comparisons", []):
        if (c["dataset"], c["recipe"], c["row"], c["baseline"]) == (dataset, recipe, row_key, baseline):
            return c
    return {"diff": None, "ci95": None, "p": None, "verdict": NA, "gap": None, "baseline_gap": None}


def diff_text(c: Mapping[str, Any]) -> str:
    """'+0.12 points (95% CI [+0.03, +0.21], p = 0.012)'."""
    if c["diff"] is None:
        return NA
    ci = f"95% CI [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}], " if c.get("ci95") else ""
    return f"{c['diff']:+.2f} points ({ci}p {'<' if c['p'] is not None and c['p'] < 0.001 else '='} {tables.fmt_p(c['p']).lstrip('< ')})"


def best(summary: Mapping[str, Any], dataset: str = "mnist") -> dict | None:
    return row(summary, "best_variant", dataset)


# --------------------------------------------------------------------------- the writeup's claims

HOLDS, FAILS, UNSUPPORTED = "holds", "does not hold", "not supported at this sample size"


def verdict_of(test: Mapping[str, Any] | None, better: int = 1, p_key: str = "p") -> str:
    """A claim's verdict from a test of "row minus baseline": holds when significant at 5% in the
    claimed direction (``better``: +1 higher is the claim, -1 lower is), does not hold when
    significant the other way, otherwise not supported at this sample size."""
    if not test or test.get(p_key) is None or test["diff"] is None or test[p_key] >= 0.05:
        return UNSUPPORTED
    return HOLDS if test["diff"] * better > 0 else FAILS


def usable_lr(by_lr: Mapping[float, Mapping[str, Any] | None], within: float = 0.5) -> float | None:
    """The highest learning rate at which a variant has no failed run and a mean within
    ``within`` points of its best mean over the sweep."""
    means = {lr: r["mean"] for lr, r in by_lr.items() if r and r["mean"] is not None}
    if not means:
        return None
    top = max(means.values())
    ok = [lr for lr, r in by_lr.items() if r and not r["failed"] and r["mean"] is not None and r["mean"] >= top - within]
    return max(ok) if ok else None


def lr_rows(summary: Mapping[str, Any]) -> dict[str, dict[float, Mapping[str, Any] | None]]:
    """variant -> {lr: its sweep row}."""
    out: dict[str, dict[float, Any]] = {}
    for entry in summary.get("lr_comparisons", []):
        for variant, r in entry["rows"].items():
            out.setdefault(variant, {})[entry["lr"]] = r
    return out


def lr_frame(summary: Mapping[str, Any]):
    """The learning-rate sweep: per rate, each variant's test accuracy (failed runs counted) and
    BatchNorm minus none with its 95% CI and p-value."""
    rows = []
    for entry in summary.get("lr_comparisons", []):
        c = entry["comparison"]
        rows.append({"lr": f"{entry['lr']:g}", **{label(v): tables.fmt_row(r) for v, r in entry["rows"].items()},
                     "BatchNorm − none [95% CI]": tables.fmt_diff(c) if c else "-", "p": tables.fmt_p(c["p"]) if c else "-"})
    return pd.DataFrame(rows)


def epochs_frame(summary: Mapping[str, Any]):
    """Epochs to the validation threshold per course-ablation row, against none."""
    rows = []
    for r in summary.get("epochs_to_accuracy", []):
        reached = [e for e in r["epochs"] if e is not None]
        rows.append({"regularization": r["label"], "epochs to reach it": tables.pm_values(reached)
                     if reached else "-", "not reached": f"{r['not_reached']} of {len(r['epochs'])}",
                     "vs none [95% CI]": tables.fmt_diff(r["welch"]) if r["welch"] else "baseline",
                     "p": tables.fmt_p(r["welch"]["p"]) if r["welch"] else "-"})
    return pd.DataFrame(rows)


def ablation_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The course-recipe ablation as rows of plots.mean_std_figure (runs that did not diverge)."""
    return [dict(r, recipe="") for r in notebook_rows(summary, list(ABLATION), ["course"])]


def convergence_frame(summary: Mapping[str, Any]):
    """The "twice the epochs" check on validation accuracy, test accuracy beside it."""
    rows = [{"dataset": tables.DATASET_LABELS[c["dataset"]], "model": c["label"],
             "epochs": f"{c['epochs']} / {c['epochs_2x']}",
             "val acc (%)": f"{c['val_mean']:.2f} / {c['val_mean_2x']:.2f}", "gain": f"{c['gain']:+.2f}",
             "seed std": "-" if c["val_std"] is None else f"{c['val_std']:.2f}",
             "converged": "yes" if c["converged"] else "no",
             "test acc (%)": f"{c['mean']:.2f} / {c['mean_2x']:.2f}"}
            for c in sorted(summary.get("convergence", []), key=lambda c: c["dataset"] != "mnist")]
    return pd.DataFrame(rows)


def plan_frame(summary: Mapping[str, Any]):
    """The executed plan: each step's budget and its estimated cost."""
    return pd.DataFrame([{"step": s["name"], "recipe": s["recipe"], "variants": str(len(s["variants"])),
                          "epochs": str(s["epochs"]), "seeds": str(len(s["seeds"])),
                          "images": f"{(s['limit'] or 55_000):,}", "estimate": tables.seconds_text(s["estimate_seconds"])}
                         for s in summary.get("plan", [])])


def seeds_frame(summary: Mapping[str, Any]):
    """Every seed's test accuracy of the rows the verdicts rest on ("-": diverged)."""
    keys = [(d, k) for d in ("mnist", "fashion-mnist") for k in summary.get(d, {}) if k != "best_variant"]
    rows = []
    for dataset, key in keys:
        e = summary[dataset][key]
        if len(e["test_acc"]) < 5:
            continue
        rows.append({"dataset": tables.DATASET_LABELS[dataset], "row": label(e["variant"]), "recipe": e["recipe"],
                     **{f"seed {s}": "-" if a is None else f"{a:.2f}" for s, a in zip(e["seeds"], e["test_acc"])}})
    return pd.DataFrame(rows).fillna("")


def records(runs_dir: str | Path, summary: Mapping[str, Any], key: str, dataset: str = "mnist") -> list[dict[str, Any]]:
    """The metrics.json of every seed of a tuned-recipe row."""
    e = row(summary, key, dataset)
    paths = [Path(runs_dir) / dataset / "tuned" / key / f"seed{s}" / "metrics.json" for s in (e or {}).get("seeds", [])]
    return [read_json(p) for p in paths if p.is_file()]


def at(table, name: str, shift: int) -> str:
    """A cell of a shift table as text."""
    return num(table.loc[name, shift]) if name in table.index and shift in table.columns else NA


def bench_text(bench: Mapping[str, Any] | None) -> str:
    """The benchmark in a few sentences: seconds per epoch and the speed-up over the course's pipeline."""
    if not bench:
        return "No benchmark was recorded (`python -m mnist_lib bench`)."
    env = bench["environment"]
    study = {r["model"]: r for r in bench["results"] if r["pipeline"] == "study"}
    per_sample = {r["model"]: r for r in bench["results"] if r["pipeline"] == "per-sample"}
    parts = [f"{label(m)} {r['seconds_per_epoch']:.1f} s" + (f" ({per_sample[m]['seconds_per_epoch'] / r['seconds_per_epoch']:.1f}× "
             "faster than the course's pipeline of one PNG per image)" if m in per_sample else "")
             for m, r in study.items()]
    return (f"`python -m mnist_lib bench` times one epoch of 55,000 images on {env.get('device_name', NA)} with "
            f"{env.get('threads', NA)} torch thread(s), median of {bench['settings']['repeats']} runs: "
            + "; ".join(parts) + ". The engine decodes the images once into one tensor, slices batches from it "
            "and augments whole batches; the course's pipeline decodes a PNG per image in a DataLoader.")


def claims_frame(summary: Mapping[str, Any], sections: Mapping[str, str]):
    """Table 1: one row per claim of the writeup, our measurement, the verdict and where the evidence is."""
    lenet, lenet_c, mlp_c = row(summary, "lenet5"), row(summary, "ablation_none@course"), row(summary, "custom_mlp@course")
    epochs = {r["variant"]: r for r in summary.get("epochs_to_accuracy", [])}
    bn_e = epochs.get("ablation_batchnorm")
    lr_by = lr_rows(summary)
    use = {v: usable_lr(by_lr) for v, by_lr in lr_by.items()}
    bd = comparison(summary, "ablation_batchnorm_dropout", ABLATION[0], "course")
    above = [e for e in (lenet, lenet_c) if e]
    lenet_ok = bool(above) and all(a > 98 for e in above for a in e["learned_acc"])
    mlp_ok = mlp_c is not None and mlp_c["mean"] is not None and abs(mlp_c["mean"] - 95) < 1
    lr_verdict = UNSUPPORTED if None in (use.get(LR_SWEEP[0]), use.get(LR_SWEEP[1])) else (
        HOLDS if use[LR_SWEEP[1]] > use[LR_SWEEP[0]] else FAILS)
    fmt_lr = lambda v: NA if use.get(v) is None else f"{use[v]:g}"  # noqa: E731
    rows = [
        ("LeNet-5 exceeds 98%", f"{pm(summary, 'lenet5')} (tuned), {pm(summary, 'ablation_none@course')} (course)",
         HOLDS if lenet_ok else FAILS, sections["results"]),
        ("CustomMLP reaches 95%", f"{pm(summary, 'custom_mlp@course')} (course), {pm(summary, 'custom_mlp')} (tuned)",
         HOLDS if mlp_ok else FAILS + " (higher)", sections["results"]),
        ("BatchNorm cuts the epochs needed to converge", "epochs to the validation threshold: "
         + (f"{tables.fmt_diff(bn_e['welch'])}, p {tables.fmt_p(bn_e['welch']['p'])}" if bn_e and bn_e["welch"] else NA),
         verdict_of(bn_e and bn_e["welch"], -1), f"{sections['bn']}.1"),
        ("BatchNorm enables higher learning rates", f"highest usable rate {fmt_lr(LR_SWEEP[0])} without, "
         f"{fmt_lr(LR_SWEEP[1])} with it", lr_verdict, f"{sections['bn']}.2"),
        ("BatchNorm + Dropout improve generalization", f"{tables.fmt_diff(bd)} points (course), Holm p "
         f"{tables.fmt_p(bd.get('p_holm'))}", verdict_of(bd, p_key="p_holm"), f"{sections['bn']}.3"),
    ]
    return pd.DataFrame(rows, columns=["the writeup's claim", "our measurement (%)", "verdict", "section"])
