"""The committed README's results table says what report/summary.json says: its "test acc" column
holds each row's test accuracy (mean ± std over seeds), not another number."""

from __future__ import annotations

import json
import re

from conftest import REPO


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Every pipe table in a Markdown text, as rows of {header: cell}."""
    tables, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.strip().startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:])
            block.append([cell.strip().replace("\\|", "|") for cell in cells])
            continue
        if len(block) >= 2 and set("".join(block[1])) <= set("-: "):
            header = block[0]
            tables.append([dict(zip(header, row)) for row in block[2:] if len(row) == len(header)])
        block = []
    return tables


def expected_cell(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def test_markdown_tables_parses_a_table():
    text = "intro\n\n| model | test acc (%) |\n|---|---:|\n| LeNet-5 | 99.49 ± 0.04 |\n\noutro\n"
    assert markdown_tables(text) == [[{"model": "LeNet-5", "test acc (%)": "99.49 ± 0.04"}]]


def test_readme_results_table_puts_test_accuracy_under_test_acc():
    summary = json.loads((REPO / "report" / "summary.json").read_text())
    readme = (REPO / "README.md").read_text()
    tables = [t for t in markdown_tables(readme) if t and any(h.startswith("test acc") for h in t[0])]
    assert tables, "README.md has no table with a 'test acc' column"
    rows = tables[0]
    test_column = next(h for h in rows[0] if h.startswith("test acc"))
    val_column = next((h for h in rows[0] if h.startswith("val acc")), None)
    # how the table names each MNIST row of the project's recipe: its display name (the best variant: "best: ...")
    entries = {}
    for key, entry in summary["mnist"].items():
        if entry.get("recipe") == "tuned":
            name = entry["label"] if key != "best_variant" else f"best: {entry['label']}"
            entries.setdefault(name, entry)
    matched = [(row, entries[row["model"]]) for row in rows if row.get("model") in entries]
    assert {"LeNet-5", "CustomMLP", "LeNet5_Regularized"} <= {row["model"] for row, _ in matched}, \
        f"README rows {[r.get('model') for r in rows]} do not name the summary's models"
    for row, entry in matched:
        assert row[test_column].startswith(expected_cell(entry["mean"], entry["std"])), (row["model"], row[test_column])
        if val_column and entry.get("val_mean") is not None and round(entry["val_mean"], 2) != round(entry["mean"], 2):
            assert not row[test_column].startswith(f"{entry['val_mean']:.2f}"), row["model"]  # not the validation number
            assert row[val_column].startswith(f"{entry['val_mean']:.2f}"), (row["model"], row[val_column])
