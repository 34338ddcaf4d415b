"""What the report notebook needs to read like a paper: numbered, captioned figures and tables
(the caption doubles as the HTML alt text), and short lookups into report/summary.json that
return "n/a" for a row a smaller run did not make. No paragraphs here: the prose is the notebook's."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from mnist_lib import tables

NA = "n/a"


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
        from IPython.display import Image, Markdown, display

        path = Path(path)
        if not path.is_file():
            display(Markdown(f"*{self.ref(key)} ({path.name}) was not produced by this run.*"))
            return
        display(Image(filename=str(path)), metadata={"image/png": {"alt": f"{self.ref(key)}: {caption}"}})
        display(Markdown(self.caption(key, caption)))

    def table(self, key: str, frame, caption: str) -> None:
        """A numbered table: the caption above it, as papers do."""
        from IPython.display import Markdown, display

        display(Markdown(self.caption(key, caption) + "\n\n" + tables.markdown_table(frame)))


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
