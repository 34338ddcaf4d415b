"""The study plan: one declarative list the pipeline executes, with its cost estimate."""

from __future__ import annotations

from mnist_lib import plan
from mnist_lib.config import PRESETS
from mnist_lib.experiments import COMPARISONS, VARIANTS


def test_every_step_names_known_notebooks_variants_and_recipes():
    names = [s.name for s in plan.STUDY]
    assert len(names) == len(set(names)), "executed copies would overwrite each other"
    for s in plan.STUDY:
        assert s.recipe in PRESETS
        assert all(v in VARIANTS or v == plan.BEST for v in s.variants)
        assert set(s.after) <= set(names)


def test_verdicts_rest_on_five_seeds_and_supporting_rows_on_three():
    by_name = {s.name: s for s in plan.STUDY}
    for name in ("lenet5", "custom_mlp", "lenet5_regularized", "ablation_course", "ablation_tuned",
                 "fashion-mnist_lenet5", "fashion-mnist_lenet5_regularized"):
        assert len(by_name[name].seeds) >= 5, name
    assert all(len(s.seeds) >= 3 for s in plan.STUDY)
    assert len(by_name["stability"].seeds) >= 20 and set(by_name["stability"].variants) == {
        "ablation_none", "ablation_dropout"}


def test_every_compared_row_is_trained_with_the_same_seeds_and_epochs_as_its_baseline():
    budget = {}
    for s in plan.STUDY:
        if not s.group:
            for v in s.variants:
                budget[(s.dataset, s.recipe, v)] = (s.seeds, s.epochs)
    for dataset, recipe, row, baseline in COMPARISONS:
        assert budget[(dataset, recipe, row)] == budget[(dataset, recipe, baseline)], (row, baseline)


def test_each_model_has_a_twice_as_long_check():
    for dataset in ("mnist", "fashion-mnist"):
        short = {s.variants[0]: s.epochs for s in plan.STUDY if s.dataset == dataset and not s.group
                 and s.notebook != "ablation" and s.variants[0] != plan.BEST}
        long = {s.variants[0]: s.epochs for s in plan.STUDY if s.dataset == dataset and s.group == "2x"}
        for model in plan.DOUBLE:
            assert long[model] == 2 * short[model]


def test_the_estimate_grows_with_the_budget_and_the_description_lists_every_step():
    step = plan.STUDY[0]
    assert plan.estimate_seconds(step.__class__(**{**step.__dict__, "epochs": 2 * step.epochs})) > plan.estimate_seconds(step)
    text = plan.describe(plan.STUDY, workers=2)
    assert all(s.name in text for s in plan.STUDY)
    assert f"{sum(s.runs for s in plan.STUDY)} runs" in text


def test_the_quick_plan_is_small():
    assert sum(s.runs for s in plan.QUICK) <= 13 and all(s.epochs <= 3 and s.limit for s in plan.QUICK)
