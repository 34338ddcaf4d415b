"""What the report notebook needs to read like a paper: numbered, captioned figures and tables, the claims'
verdicts, and lookups into report/summary.json that read "n/a" for a row a smaller run did not make (no prose)."""

from __future__ import annotations

import contextlib
import io
import struct
from typing import Any, Mapping

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, Markdown, display

from mnist_lib import tables
from mnist_lib.errors import MnistLibError
from mnist_lib.registry import ABLATION, LR_SWEEP, label

NA = "n/a"
HOLDS, FAILS, UNSUPPORTED = "holds", "does not hold", "not supported at this sample size"
# The PDF's text width (letter paper, the template's margins) and the template's image limits.
TEXT_WIDTH_IN, IMAGE_WIDTH, IMAGE_MAX_HEIGHT_IN = 8.5 - 2 * 0.85, 0.92, 0.40 * 11


class Claims:
    """The premises of the report's sentences: ``claim(premise, where)`` returns whether it holds, so a sentence is
    written for the study's outcome and checked in code beside it. A broken premise stops a full render
    (``strict``), naming the sentence; a quick render lists them in a `box` and goes on."""

    def __init__(self, strict: bool):
        self.strict, self.broken, self.handle = strict, [], None

    def box(self) -> None:
        """Where the list of broken premises goes (filled in as they break)."""
        self.handle = display(Markdown(""), display_id=True)

    def __call__(self, premise: Any, where: str) -> bool:
        with contextlib.suppress(TypeError, KeyError, IndexError, ValueError):  # a premise as a function may read
            if premise() if callable(premise) else premise:          # numbers a quick run lacks: then it breaks
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
    """Figure (or table) numbers in order of first mention, so the text can refer ahead: ``fig.ref("curves")``
    -> "Figure 3", and ``fig.show_figure("curves", ...)`` later captions it "Figure 3: ..."."""

    def __init__(self, kind: str = "Figure"):
        self.kind = kind
        self.numbers: dict[str, int] = {}

    def ref(self, key: str) -> str:
        return f"{self.kind} {self.numbers.setdefault(key, len(self.numbers) + 1)}"

    def show_figure(self, key: str, figure, caption: str) -> None:
        """A matplotlib figure (already saved where it belongs; closed), then its caption, also its alt text."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=150, bbox_inches="tight", facecolor="white")
        plt.close(figure)
        png, ref = buffer.getvalue(), self.ref(key)
        width, height = struct.unpack(">II", png[16:24])  # the PNG's IHDR chunk
        keep_together(min(TEXT_WIDTH_IN * IMAGE_WIDTH * height / width, IMAGE_MAX_HEIGHT_IN) + 0.55)  # + caption
        display(Image(data=png, format="png"), metadata={"image/png": {"alt": f"{ref}: {caption}"}})
        display(Markdown(f"**{ref}:** {caption}"))

    def table(self, key: str, frame, caption: str) -> None:
        """A numbered table: the caption above it, as papers do."""
        keep_together(0.17 * (len(frame) + 2) + 0.6 + 0.16 * len(caption) / 90)
        display(Markdown(f"**{self.ref(key)}:** {caption}\n\n" + tables.markdown_table(frame)))


def keep_together(inches: float) -> None:
    """PDF only: start a new page unless this much room is left, so a float and its caption stay
    on one page (the PDF template's keeptogether; the HTML gets nothing)."""
    display({"text/latex": f"\\keeptogether{{{inches:.2f}in}}", "text/html": ""}, raw=True)


def row(summary: Mapping[str, Any], key: str, dataset: str = "mnist", group: str | None = None) -> dict | None:
    """A summary row (``group``: "2x" or "stability"), or None."""
    return (summary.get(group, {}) if group else summary).get(dataset, {}).get(key)


def pm(summary: Mapping[str, Any], key: str, dataset: str = "mnist") -> str:
    """A row's test accuracy as 'mean ± std' over the runs that learned."""
    r = row(summary, key, dataset)
    return tables.fmt_row(r) if r else NA


def num(value: float | None, digits: int = 2, sign: bool = False) -> str:
    return NA if value is None else f"{value:{'+' if sign else ''}.{digits}f}"


def comparison(summary: Mapping[str, Any], row_key: str, baseline: str, recipe: str = "tuned",
               dataset: str = "mnist") -> dict[str, Any]:
    """A saved Welch comparison, or an empty one whose fields read "n/a"."""
    for c in summary.get("comparisons", []):
        if (c["dataset"], c["recipe"], c["row"], c["baseline"]) == (dataset, recipe, row_key, baseline):
            return c
    return {"diff": None, "ci95": None, "p": None, "verdict": NA, "gap": None, "baseline_gap": None}


def diff_text(c: Mapping[str, Any]) -> str:
    """'+0.12 points [+0.03, +0.21], p = 0.012': the bracket is the 95% confidence interval."""
    if c.get("diff") is None:  # also a comparison a smaller run did not make
        return NA
    ci = f"[{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}], " if c.get("ci95") else ""
    p = tables.fmt_p(c["p"])
    return f"{c['diff']:+.2f} points {ci}p {p if p.startswith('<') else '= ' + p}"


def verdict_of(test: Mapping[str, Any] | None, better: int = 1, p_key: str = "p") -> str:
    """A claim's verdict from a test of "row minus baseline": holds when significant at 5% in the claimed
    direction (``better``: +1 higher, -1 lower), does not hold when significant the other way, else unsupported."""
    if not test or test.get(p_key) is None or test["diff"] is None or test[p_key] >= 0.05:
        return UNSUPPORTED
    return HOLDS if test["diff"] * better > 0 else FAILS


def usable_lr(by_lr: Mapping[float, Mapping[str, Any] | None], within: float = 0.5) -> float | None:
    """The highest learning rate with no failed run and a mean within ``within`` points of the sweep's best."""
    means = {lr: r["mean"] for lr, r in by_lr.items() if r and r["mean"] is not None}
    top = max(means.values(), default=None)
    return max((lr for lr, m in means.items() if not by_lr[lr]["failed"] and m >= top - within), default=None)


def lr_rows(summary: Mapping[str, Any]) -> dict[str, dict[float, Mapping[str, Any] | None]]:
    """variant -> {lr: its sweep row}."""
    out: dict[str, dict[float, Any]] = {}
    for entry in summary.get("lr_comparisons", []):
        for variant, r in entry["rows"].items():
            out.setdefault(variant, {})[entry["lr"]] = r
    return out


def at(table, name: str, shift: int) -> str:
    """A cell of a shift table as text."""
    return num(table.loc[name, shift]) if name in table.index and shift in table.columns else NA


def bench_text(bench: Mapping[str, Any] | None) -> str:
    """The benchmark in a few sentences: seconds per epoch and the speed-up over the course's pipeline."""
    if not bench:
        return "No benchmark was recorded (`python -m mnist_lib bench`)."
    env, results = bench["environment"], bench["results"]
    course = {r["model"]: r["seconds_per_epoch"] for r in results if r["pipeline"] == "per-sample"}
    study, threads = [r for r in results if r["pipeline"] == "study"], env.get("threads", NA)
    listing = lambda items: " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)  # noqa: E731
    times = listing([f"{label(r['model'])} {r['seconds_per_epoch']:.1f} s" for r in study])
    ratios = listing([f"{course[r['model']] / r['seconds_per_epoch']:.1f}" for r in study if r["model"] in course])
    return (f"One training epoch of {bench['settings']['images_per_epoch']:,} images takes {times} (`python -m "
            f"mnist_lib bench`: median of {bench['settings']['repeats']} runs on {env.get('device_name', NA)}, "
            f"{threads} torch thread{'' if threads == 1 else 's'}). That is {ratios} times as fast, in that order, as "
            "the course's pipeline, which decodes a PNG per image in a DataLoader; the engine decodes the images once "
            "into one tensor, slices batches from it and augments whole batches.")


def claims_frame(summary: Mapping[str, Any], sections: Mapping[str, str]):
    """Table 1: one row per claim of the writeup, our measurement, the verdict and where the evidence is."""
    bn_e = {r["variant"]: r for r in summary.get("epochs_to_accuracy", [])}.get("ablation_batchnorm")
    bn_test = bn_e and bn_e["welch"]
    without, with_bn = (usable_lr(lr_rows(summary).get(v, {})) for v in LR_SWEEP)
    rates = [NA if u is None else f"{u:g}" for u in (without, with_bn)]
    test = next((e["comparison"] for e in summary.get("lr_comparisons", []) if e["lr"] == without), None)  # its limit
    bd = comparison(summary, "ablation_batchnorm_dropout", ABLATION[0], "course")
    fashion = comparison(summary, "lenet5_regularized", "lenet5", dataset="fashion-mnist")
    lenets, r = [e for e in (row(summary, "lenet5"), row(summary, "ablation_none@course")) if e], sections["results"]
    mlp_c = row(summary, "custom_mlp@course")
    mlp_ok = mlp_c is not None and mlp_c["mean"] is not None and abs(mlp_c["mean"] - 95) < 1
    rows = [
        ("LeNet-5 exceeds 98%", f"{pm(summary, 'lenet5')}% (tuned), {pm(summary, 'ablation_none@course')}% (course)",
         HOLDS if lenets and all(a > 98 for e in lenets for a in e["learned_acc"]) else FAILS, f"{r}.2"),
        ("CustomMLP reaches 95%", f"{pm(summary, 'custom_mlp@course')}% (course), {pm(summary, 'custom_mlp')}% (tuned)",
         HOLDS if mlp_ok else FAILS + " (higher)", f"{r}.4"),
        ("BatchNorm cuts the epochs needed to converge", "epochs to the validation threshold, with minus without: "
         + (f"{tables.fmt_diff(bn_test)}, p {tables.fmt_p(bn_test['p'])}" if bn_test else NA),
         verdict_of(bn_test, -1), f"{sections['bn']}.1"),
        ("BatchNorm enables higher learning rates", f"usable up to {rates[0]} without, {rates[1]} with it; at "
         f"{rates[0]}: {tables.fmt_diff(test)}, p {tables.fmt_p(test and test['p'])} "
         f"({min(test['n']) if test else NA} seeds)",
         HOLDS if None not in (without, with_bn) and with_bn > without and verdict_of(test) == HOLDS else UNSUPPORTED,
         f"{sections['bn']}.2"),
        ("BatchNorm + Dropout improve generalization", f"{tables.fmt_diff(bd)} points (course), p "
         f"{tables.fmt_p(bd['p'])}, Holm p {tables.fmt_p(bd.get('p_holm'))}; Fashion-MNIST: {tables.fmt_diff(fashion)}",
         verdict_of(bd, p_key="p_holm"), f"{sections['bn']}.3, {sections['fashion']}"),
    ]
    return pd.DataFrame(rows, columns=["the writeup's claim", "our measurement", "verdict", "section"])
