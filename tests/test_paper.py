"""The report's machinery: premises of sentences (Claims), the claims table's verdicts, the
learning-rate rule, and the report notebook's own source (no hand-typed figure or table numbers)."""

from __future__ import annotations

import re

import pytest

from conftest import REPO
from mnist_lib import paper, stats
from mnist_lib.errors import MnistLibError


def test_a_broken_premise_stops_a_full_render_and_names_the_sentence():
    claims = paper.Claims(strict=True)
    assert claims(True, "Section 9: fine") is True
    with pytest.raises(MnistLibError, match="Section 4.1: BatchNorm converges.*rewrite that sentence"):
        claims(False, "Section 4.1: BatchNorm converges in fewer epochs")


def test_a_quick_render_lists_broken_premises_and_goes_on():
    claims = paper.Claims(strict=False)
    assert claims(False, "abstract: a") is False
    claims(True, "Section 2: b")
    claims(False, "Section 3: c")
    assert claims.broken == ["abstract: a", "Section 3: c"]


def test_a_premise_over_numbers_a_run_lacks_is_broken_not_an_exception():
    missing = {"diff": None}  # a comparison a smaller run did not make
    quick = paper.Claims(strict=False)
    assert quick(lambda: missing["diff"] < 0, "Section 4.1: a") is False
    assert quick(lambda: {}["p_holm"] > 0.05, "Section 4.3: b") is False
    assert quick(lambda: {"diff": -0.5}["diff"] < 0, "Section 4.3: c") is True
    assert quick(lambda: min(c["gain"] for c in []) > 0, "Section 3.3: d") is False  # no rows: min() of nothing
    assert quick.broken == ["Section 4.1: a", "Section 4.3: b", "Section 3.3: d"]
    with pytest.raises(MnistLibError, match="Section 4.1: a"):
        paper.Claims(strict=True)(lambda: missing["diff"] < 0, "Section 4.1: a")


@pytest.mark.parametrize("test, better, expected", [
    ({"diff": 0.3, "p": 0.01}, 1, paper.HOLDS),
    ({"diff": -0.3, "p": 0.01}, 1, paper.FAILS),
    ({"diff": -1.2, "p": 0.049}, -1, paper.HOLDS),  # fewer epochs is the claim
    ({"diff": 0.3, "p": 0.05}, 1, paper.UNSUPPORTED),
    ({"diff": 0.3, "p": None}, 1, paper.UNSUPPORTED),
    (None, 1, paper.UNSUPPORTED),
])
def test_verdict_of_a_claim(test, better, expected):
    assert paper.verdict_of(test, better) == expected


def test_verdict_reads_the_holm_adjusted_p_when_asked():
    test = {"diff": 0.2, "p": 0.01, "p_holm": 0.06}
    assert paper.verdict_of(test) == paper.HOLDS
    assert paper.verdict_of(test, p_key="p_holm") == paper.UNSUPPORTED


def _row(mean, failed=0):
    return {"mean": mean, "failed": failed}


def test_usable_lr_is_the_highest_rate_without_failures_near_the_best():
    assert paper.usable_lr({0.01: _row(98.9), 0.03: _row(99.0), 0.1: _row(98.7), 0.3: _row(None, 3)}) == 0.1
    assert paper.usable_lr({0.01: _row(98.9), 0.03: _row(99.0), 0.1: _row(98.2), 0.3: _row(99.0, 1)}) == 0.03
    assert paper.usable_lr({0.1: None}) is None


def _entry(variant, recipe, accs):
    learned = [a for a in accs if a is not None and a >= 50]
    mean, std = stats.mean_std(learned)
    return {"variant": variant, "recipe": recipe, "test_acc": accs, "learned_acc": learned, "mean": mean, "std": std,
            "failed": len(accs) - len(learned), "gap_mean": 0.3}


def _summary():
    mnist = {"lenet5": _entry("lenet5", "tuned", [99.4, 99.5, 99.45]),
             "ablation_none@course": _entry("ablation_none", "course", [98.9, 99.0, 99.1]),
             "custom_mlp@course": _entry("custom_mlp", "course", [97.8, 97.9, 98.0]),
             "custom_mlp": _entry("custom_mlp", "tuned", [98.9, 98.95, 99.0])}
    lr = [{"lr": 0.01, "rows": {"ablation_none": _entry("ablation_none", "course", [98.9, 99.0, 99.1]),
                                "ablation_batchnorm": _entry("ablation_batchnorm", "course", [99.0, 99.1, 99.0])},
           "comparison": {"diff": 0.4, "ci95": [0.2, 0.6], "p": 0.01, "n": [3, 3]}},
          {"lr": 0.3, "rows": {"ablation_none": _entry("ablation_none", "course", [None, 11.35, None]),
                               "ablation_batchnorm": _entry("ablation_batchnorm", "course", [99.0, 98.9, 99.1])},
           "comparison": None}]
    comparisons = [{"dataset": "mnist", "recipe": "course", "row": "ablation_batchnorm_dropout",
                    "baseline": "ablation_none", "diff": 0.05, "ci95": [-0.1, 0.2], "p": 0.4, "p_holm": 1.0}]
    epochs = [{"variant": "ablation_batchnorm", "welch": {"diff": -1.4, "ci95": [-2.0, -0.8], "p": 0.002}}]
    return {"mnist": mnist, "lr_comparisons": lr, "comparisons": comparisons, "epochs_to_accuracy": epochs}


def test_the_claims_table_has_one_verdict_per_claim_of_the_writeup():
    sections = {"results": "3", "bn": "4", "fashion": "6"}
    frame = paper.claims_frame(_summary(), sections)
    assert len(frame) == 5
    verdicts = dict(zip(frame["the writeup's claim"], frame["verdict"]))
    assert verdicts["LeNet-5 exceeds 98%"] == paper.HOLDS
    assert verdicts["CustomMLP reaches 95%"].startswith(paper.FAILS)  # 97.9% is not the writeup's 95%
    assert verdicts["BatchNorm cuts the epochs needed to converge"] == paper.HOLDS
    # usable up to 0.3 with it, 0.01 without, and ahead at 0.01 by a significant Welch test
    assert verdicts["BatchNorm enables higher learning rates"] == paper.HOLDS
    assert "at 0.01: +0.40 [+0.20, +0.60], p 0.010 (3 seeds)" in frame["our measurement"][3]
    assert verdicts["BatchNorm + Dropout improve generalization"] == paper.UNSUPPORTED
    assert list(frame["section"]) == ["3.2", "3.4", "4.1", "4.2", "4.3, 6"]
    noisy = _summary()
    noisy["lr_comparisons"][0]["comparison"]["p"] = 0.3  # the rates alone, without a significant test: not enough
    assert paper.claims_frame(noisy, sections)["verdict"][3] == paper.UNSUPPORTED


def test_the_report_types_no_figure_or_table_number():
    source = (REPO / "notebooks" / "report.py").read_text()
    typed = re.findall(r"\b(?:Figure|Table|Fig\.) \d+", source)
    assert typed == [], f"hand-typed references in notebooks/report.py: {typed} (use fig.ref / tab.ref)"


def test_a_figure_is_kept_with_its_caption_in_the_pdf(monkeypatch):
    shown = []
    monkeypatch.setattr(paper, "display", lambda obj, **kw: shown.append(obj))
    paper.keep_together(3.25)
    assert shown == [{"text/latex": "\\keeptogether{3.25in}", "text/html": ""}]


def test_bench_text_gives_each_model_its_time_and_speed_up_in_order():
    bench = {"environment": {"device_name": "AMD EPYC", "threads": 1},
             "settings": {"repeats": 3, "images_per_epoch": 55000},
             "results": [{"pipeline": "per-sample", "model": "lenet5", "seconds_per_epoch": 30.0},
                         {"pipeline": "study", "model": "lenet5", "seconds_per_epoch": 10.0},
                         {"pipeline": "per-sample", "model": "custom_mlp", "seconds_per_epoch": 8.0},
                         {"pipeline": "study", "model": "custom_mlp", "seconds_per_epoch": 2.0}]}
    text = paper.bench_text(bench)
    assert "55,000 images takes LeNet-5 10.0 s and CustomMLP 2.0 s" in text
    assert "That is 3.0 and 4.0 times as fast" in text and "1 torch thread)" in text
    assert "thread(s)" not in paper.bench_text({**bench, "environment": {"threads": 2}})
    assert "No benchmark" in paper.bench_text(None)
