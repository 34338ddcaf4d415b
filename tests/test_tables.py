"""Numbers into table cells, on a summary built from hand-made run folders: no training."""

from __future__ import annotations

import pandas as pd
import pytest

from mnist_lib import tables
from mnist_lib.experiments import study_summary
from mnist_lib.registry import label
from test_experiments import _fake_run


@pytest.fixture
def summary(tmp_path):
    for seed, acc in enumerate([99.50, 99.56, 99.53, 99.55, 99.51]):
        _fake_run(tmp_path, "mnist", "tuned", "lenet5", seed, acc)
        _fake_run(tmp_path, "mnist", "tuned", "custom_mlp", seed, acc - 0.6)
        _fake_run(tmp_path, "mnist", "tuned", "lenet5_rotation", seed, acc - 0.01)
        _fake_run(tmp_path, "mnist", "tuned", "ablation_none", seed, [11.35, 99.0, 99.1, 98.95, 99.05][seed])
        _fake_run(tmp_path, "mnist", "course", "ablation_none", seed, acc - 0.5)
        _fake_run(tmp_path, "mnist", "course", "ablation_batchnorm", seed, acc - 0.2)
    return study_summary(tmp_path)


def test_results_frame_reports_failed_runs_beside_the_mean(summary):
    frame = tables.results_frame(summary, "mnist", ["lenet5", "ablation_none"])
    assert list(frame["model"]) == ["LeNet-5", "ablation: none"]
    assert frame["test acc (%)"][0] == "99.53 ± 0.03"  # the test numbers under "test acc"
    assert frame["val acc (%)"][0] == "99.43 ± 0.03" and frame["train acc (%)"][0] == "99.83 ± 0.03"  # test - 0.1, + 0.3
    assert frame["gap"][0] == "+0.30"
    assert frame["seeds"][1] == "5 (1 failed)" and frame["test acc (%)"][1] == "99.03 ± 0.06 (1 failed)"


def test_targets_are_met_or_missed_by_the_mean(summary):
    frame = tables.targets_frame(summary)
    result = dict(zip(frame["target"], frame["result"]))
    assert result["LeNet-5"] == "met" and result["CustomMLP"] == "missed"
    assert result["LeNet5_Regularized"] == "not run"


def test_ablation_frame_gives_the_difference_interval_and_verdict(summary):
    frame = tables.ablation_frame(summary, ["ablation_none", "ablation_batchnorm"], "course")
    assert list(frame["vs none [95% CI]"])[0] == "baseline"
    diff = frame["vs none [95% CI]"][1]
    assert diff.startswith("+0.30 [+0.") and frame["p"][1] == "< 0.001"
    assert frame["Holm p"][1] == "< 0.001"  # one row tested against the baseline: Holm changes nothing


def test_comparisons_frame_names_rows_and_gives_verdicts(summary):
    frame = tables.comparisons_frame(summary)
    assert set(frame["dataset"]) == {"MNIST"}  # named as the report names it
    rotation = label("lenet5_rotation")  # the display name, never the code name
    assert rotation != "lenet5_rotation" and rotation.startswith("LeNet-5")
    tuned = frame[frame["recipe"] == "tuned"]
    assert set(zip(tuned["row"], tuned["baseline"])) == {("LeNet-5", "none"), (rotation, "LeNet-5"), ("LeNet-5", "CustomMLP")}
    assert list(tuned[tuned["row"] == rotation]["verdict"]) == ["no evidence either way"]
    assert list(frame[frame["recipe"] == "course"]["verdict"]) == ["helps"]
    holm = {(r["row"], r["baseline"]): r for r in frame.to_dict("records")}
    c = next(c for c in summary["comparisons"] if (c["label"], c["baseline_label"]) == (rotation, "LeNet-5"))
    assert holm[(rotation, "LeNet-5")]["Holm p"] == tables.fmt_p(c["p_holm"])  # the verdict is judged on it


def test_markdown_table_widths_and_escapes():
    text = tables.markdown_table(pd.DataFrame([{"model": "LeNet5_Regularized", "acc": "99.12 ± 0.05", "note": "a|b"}]))
    header, rule, row = text.splitlines()
    assert rule.count("-") >= len("LeNet5_Regularized") and rule.split("|")[2].endswith(":")  # numbers right-aligned
    assert "a\\|b" in row
    assert tables.markdown_table(pd.DataFrame()) == "*(no rows)*"


def test_markdown_table_keeps_number_cells_whole_and_wraps_long_text():
    """A wide table: each number-like column's dashes cover its longest cell (pandoc then never
    wraps "99.49 ± 0.04"); a long text column gets less than its longest cell, so it wraps."""
    long = "BatchNorm + Dropout + augmentation and a long explanation that must wrap"
    frame = pd.DataFrame([{"row": long, "acc": "99.49 ± 0.04", "diff": "+0.26 [+0.14, +0.38]", "time": "24.1 min",
                           "verdict": "no evidence either way"}] * 2)
    rule = tables.markdown_table(frame).splitlines()[1]
    dashes = [len(part) for part in rule.strip("|").split("|")]
    assert dashes[1] > len("99.49 ± 0.04") and dashes[2] > len("+0.26 [+0.14, +0.38]")
    assert dashes[3] > len("24.1 min")  # a short cell stays on one line
    assert dashes[0] < len(long) and dashes[0] >= 1.25 * len("explanation")
    assert sum(dashes) <= tables.TABLE_CHARS + 10


def test_markdown_table_gives_a_narrow_text_column_s_spare_width_to_a_wider_one():
    """Per-seed table: "Fashion-MNIST" needs less than an equal share, so the row name beside it fits whole."""
    name = "BatchNorm + Dropout + augm."
    frame = pd.DataFrame([{"dataset": "Fashion-MNIST", "row": name, "recipe": "course",
                           **{f"seed {s}": "99.12" for s in range(5)}}])
    dashes = [len(part) for part in tables.markdown_table(frame).splitlines()[1].strip("|").split("|")]
    assert dashes[1] > len(name) and dashes[0] < dashes[1]
    assert sum(dashes) <= tables.TABLE_CHARS + 10


def test_recipes_frame_reads_the_presets():
    frame = tables.recipes_frame()
    tuned = frame[frame.recipe == "tuned"].iloc[0]
    assert tuned["lr"] == "one-cycle, peak 0.1" and tuned["grad clip"] == "norm 1" and tuned["batch"] == "128"


def test_fit_frame_sets_each_headline_model_beside_its_twice_the_epochs_run(tmp_path):
    for seed, acc in enumerate([99.50, 99.56, 99.53]):
        _fake_run(tmp_path, "mnist", "tuned", "lenet5", seed, acc)
        _fake_run(tmp_path, "mnist", "tuned", "custom_mlp", seed, acc - 0.6)  # no twice-the-epochs run: no row
        _fake_run(tmp_path, "fashion-mnist", "tuned", "lenet5", seed, acc - 8)
        _fake_run(tmp_path, "mnist", "tuned", "lenet5", seed, acc + 0.1, epochs=20, group="2x")
        _fake_run(tmp_path, "fashion-mnist", "tuned", "lenet5", seed, acc - 7, epochs=20, group="2x")
    frame = tables.fit_frame(study_summary(tmp_path))
    assert list(zip(frame["dataset"], frame["model"])) == [("MNIST", "LeNet-5"), ("Fashion-MNIST", "LeNet-5")]
    first = frame.iloc[0]
    assert first["epochs"] == "10 / 20" and first["test acc (%)"] == "99.53 / 99.63"
    assert first["train acc (%)"] == "99.83 / 99.93" and first["gap"] == "+0.30 / +0.30"  # clean train = test + 0.3


def test_plan_frame_names_what_each_step_trains_in_display_names(summary):
    from dataclasses import asdict

    from mnist_lib.plan import STUDY

    names = ("ablation_course", "lenet5_2x", "stability", "fashion-mnist_best", "lr_0.1")
    steps = [s for s in STUDY if s.name in names]
    frame = tables.plan_frame({**summary, "plan": [dict(asdict(s), estimate_seconds=90.0) for s in steps]})
    rows = {r["trains"]: r for r in frame.to_dict("records")}
    assert set(rows["LeNet-5"].values()) >= {"MNIST", "2× epochs", "40", "3", "1.5 min"}
    assert rows["none, Dropout"]["note"] == "stability sweep" and rows["none, BatchNorm"]["note"] == "lr 0.1"
    assert "the best MNIST variant (none: it has a row of its own)" in rows  # LeNet-5 is best: the step trains nothing
    assert not any(code in " ".join(rows) for code in ("lenet5", "ablation_", "custom_mlp"))


def test_lr_frame_compares_a_rate_only_where_no_run_failed(tmp_path):
    for seed in range(3):
        for lr, none_acc in (("0.03", 98.6 + seed / 10), ("0.1", [98.9, 11.35, 74.0][seed])):
            _fake_run(tmp_path, "mnist", "course", "ablation_none", seed, none_acc, group=f"lr/{lr}")
            _fake_run(tmp_path, "mnist", "course", "ablation_batchnorm", seed, 99.0 + seed / 10, group=f"lr/{lr}")
    frame = tables.lr_frame(study_summary(tmp_path)).set_index("lr")
    assert frame.loc["0.03", "BatchNorm − none [95% CI]"].startswith("+0.40 [") and frame.loc["0.03", "p"] != "-"
    assert frame.loc["0.1", "none"] == "86.45 ± 17.61 (1 failed)"  # the survivors: 98.9 and 74.0
    assert frame.loc["0.1", "BatchNorm − none [95% CI]"] == "-" and frame.loc["0.1", "p"] == "-"


def test_dataset_rows_use_display_names_and_leave_out_diverged_runs(tmp_path):
    for seed, acc in enumerate([99.50, 99.56, 99.53]):
        _fake_run(tmp_path, "mnist", "tuned", "lenet5", seed, acc)
        _fake_run(tmp_path, "fashion-mnist", "tuned", "lenet5", seed, acc - 8)
    summary = study_summary(tmp_path)
    summary["fashion-mnist"]["lenet5"]["test_acc"][1] = None  # a diverged run has no accuracy
    rows = tables.dataset_rows(summary)
    assert [(r["label"], r["dataset"]) for r in rows] == [("LeNet-5", "MNIST"), ("LeNet-5", "Fashion-MNIST")]
    assert rows[1]["values"] == [91.5, 91.53]
