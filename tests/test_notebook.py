"""The notebooks' parameter checks (mnist_lib.notebook) and the report's tables and computed
sentences (mnist_lib.report), on hand-made summaries: no data, no training."""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error, run_cli
from mnist_lib import report
from mnist_lib.config import PRESETS, TrainConfig
from mnist_lib.errors import MnistLibError
from mnist_lib.notebook import check_grid, check_parameters, check_report_parameters, parse_seeds


# --------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("given, seeds", [([0, 1, 2], [0, 1, 2]), (3, [3]), ("[0, 1]", [0, 1]), ("0,1", [0, 1]),
                                          ("5", [5]), ((4, 2), [4, 2])])
def test_parse_seeds(given, seeds):
    assert parse_seeds(given) == seeds


@pytest.mark.parametrize("given", [[], "abc", [0, 0], [0.5], [True], None, "[0, 'a']"])
def test_parse_seeds_rejects(given):
    with pytest.raises(MnistLibError, match="seeds must"):
        parse_seeds(given)


def test_check_parameters_uses_the_recipe_for_none():
    run = check_parameters("lenet5", "tuned", [0, 1], "mnist", "runs", "images", False, architecture="lenet5",
                           epochs=None, lr=None, batch_size=None, limit=2000)
    assert run.config.epochs == PRESETS["tuned"]["epochs"] and run.config.lr == PRESETS["tuned"]["lr"]
    assert run.config.limit == 2000 and run.seeds == [0, 1]
    assert str(run.figure("_result")).endswith("images/lenet5_result.png")


def test_check_parameters_fashion_figures_go_elsewhere():
    run = check_parameters("custom_mlp", dataset="fashion-mnist", images_dir="images")
    assert str(run.figure()) == "images/fashion-mnist/custom_mlp.png"


def test_wrong_type_has_the_config_message():
    with pytest.raises(MnistLibError) as notebook_error:
        check_parameters("lenet5", epochs="abc")
    with pytest.raises(MnistLibError) as config_error:
        TrainConfig.from_dict({"epochs": "abc"})
    assert str(notebook_error.value) == str(config_error.value) == "epochs must be an integer, got 'abc' (str)"


def test_bad_value_has_the_cli_message():
    with pytest.raises(MnistLibError) as notebook_error:
        check_parameters("lenet5", lr=-1.0)
    cli = run_cli("train", "--out", "unused", "--lr", "-1")
    line = assert_one_line_error(cli)
    assert line == f"error: {notebook_error.value}"


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="custom_mlp", architecture="lenet5"), "run it with notebooks/custom_mlp.ipynb"),
    (dict(model="resnet"), "model 'resnet' is unknown"),
    (dict(model="lenet5", recipe="fast"), "recipe 'fast' is unknown"),
    (dict(model="lenet5", dataset="cifar"), "dataset 'cifar' is unknown"),
    (dict(model="lenet5", retrain="yes"), "retrain must be True or False"),
    (dict(model="lenet5", runs_dir=3), "runs_dir must be a folder path"),
    (dict(model="lenet5", device="tpu"), "device 'tpu' is unknown"),
    (dict(model="lenet5", warmup=3), "unknown parameter(s) warmup"),
])
def test_check_parameters_rejects(kwargs, message):
    with pytest.raises(MnistLibError) as error:
        check_parameters(**kwargs)
    assert message in str(error.value)


def test_best_variant_runs_through_its_architectures_notebook():
    run = check_parameters("lenet5_batchnorm", architecture="lenet5")
    assert run.config.model == "lenet5" and run.config.batchnorm is True
    assert run.name == "LeNet-5 (lenet5_batchnorm)"


def test_check_grid():
    runs = check_grid(["ablation_none", "ablation_dropout"], "tuned,course", seeds=[0], epochs=1)
    assert [(r.variant, r.recipe) for r in runs] == [("ablation_none", "tuned"), ("ablation_dropout", "tuned"),
                                                      ("ablation_none", "course"), ("ablation_dropout", "course")]
    with pytest.raises(MnistLibError, match="variant 'nope' is unknown"):
        check_grid(["nope"], ["tuned"])


def test_check_report_parameters():
    assert check_report_parameters("r", "i", "s.json", 12)[3] == 12.0
    with pytest.raises(MnistLibError, match="wall_seconds"):
        check_report_parameters(wall_seconds="soon")


# --------------------------------------------------------------------------- tables and sentences

def entry(variant, accs, recipe="tuned", params=61_706, label=None, val=None):
    import statistics

    return {"variant": variant, "recipe": recipe, "label": label or variant, "test_acc": accs,
            "mean": statistics.fmean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "val_acc": val or accs, "test_loss": [0.03] * len(accs), "selected_epoch": [8] * len(accs),
            "seeds": list(range(len(accs))), "epochs": 8, "params": params,
            "seconds": 100.0 * len(accs), "train_seconds": 90.0 * len(accs)}


@pytest.fixture
def summary():
    mnist = {
        "lenet5": entry("lenet5", [99.40, 99.46, 99.43], label="LeNet-5"),
        "custom_mlp": entry("custom_mlp", [98.1, 98.3, 98.2], params=61_338, label="CustomMLP"),
        "lenet5_regularized": entry("lenet5_regularized", [99.50, 99.56, 99.53], params=61_750,
                                    label="LeNet5_Regularized"),
        "ablation_none": entry("ablation_none", [99.0, 99.1, 99.05], label="none"),
        "ablation_dropout": entry("ablation_dropout", [99.02, 99.12, 99.07], label="Dropout only"),
        "ablation_batchnorm": entry("ablation_batchnorm", [99.3, 99.35, 99.32], params=61_750, label="BatchNorm only"),
        "ablation_none@course": entry("ablation_none", [98.8, 98.9, 98.85], recipe="course", label="none"),
    }
    mnist["best_variant"] = {**mnist["lenet5_regularized"], "chosen_by": "best mean validation accuracy"}
    fashion = {
        "lenet5": entry("lenet5", [90.0, 90.2, 90.1], label="LeNet-5"),
        "custom_mlp": entry("custom_mlp", [88.0, 88.3, 88.1], params=61_338, label="CustomMLP"),
        "lenet5_regularized": entry("lenet5_regularized", [90.8, 91.0, 90.9], params=61_750, label="LeNet5_Regularized"),
    }
    return {"mnist": mnist, "fashion-mnist": fashion}


def test_compare_tie_rule():
    a, b = entry("a", [99.0, 99.2]), entry("b", [99.1, 99.3])
    c = report.compare(a, b)
    assert c.tie and "tie" in c.sentence()
    far = report.compare(entry("a", [99.5, 99.6]), entry("b", [99.0, 99.1]))
    assert not far.tie and "beats" in far.sentence()
    one = report.compare(entry("a", [99.5]), entry("b", [99.0]))
    assert not one.tie and "one seed" in one.sentence()


def test_targets_frame(summary):
    frame = report.targets_frame(summary)
    assert list(frame["result"]) == ["met", "met", "not met", "not met"]
    assert frame["measured (%)"][0] == "99.43 ± 0.03"
    assert "LeNet5_Regularized" in frame["target"][3]


def test_targets_need_the_parameter_limit(summary):
    summary["mnist"]["best_variant"] = entry("big", [99.9, 99.9, 99.9], params=70_000)
    assert report.targets_frame(summary)["result"][3] == "not met"


def test_results_frame_orders_models_first(summary):
    frame = report.results_frame(summary, "mnist")
    assert list(frame["model"][:3]) == ["LeNet-5", "CustomMLP", "LeNet5_Regularized"]
    assert frame["model"].iloc[-1] == "ablation: none" and frame["recipe"].iloc[-1] == "course"
    assert frame["test acc (%)"][0] == "99.43 ± 0.03"


def test_ablation_frame_and_sentences(summary):
    variants = ["ablation_none", "ablation_batchnorm", "ablation_dropout"]
    frame = report.ablation_frame(summary, variants, ["tuned", "course"])
    assert list(frame["tuned: vs none"]) == ["baseline", "+0.27", "+0.02 (tie)"]
    assert list(frame["course: test acc (%)"]) == ["98.85 ± 0.05", "-", "-"]
    text = report.ablation_sentences(summary, variants, ["tuned"])
    assert "BatchNorm only beats LeNet-5 without regularization by 0.27 points" in text
    assert "Dropout only and LeNet-5 without regularization tie" in text
    assert "1 of 2 changes help beyond the seed spread" in text


def test_computed_prose(summary):
    abstract = report.abstract(summary)
    assert "LeNet-5 (61,706 parameters) reaches 99.43 ± 0.03% test accuracy, which exceeds 98%" in abstract
    assert "above the writeup's 95%" in abstract
    assert "the ranking carries over" in report.carry_over_sentence(summary)
    summary["mnist"]["lenet5"] = entry("lenet5", [97.0, 97.2], label="LeNet-5")
    assert "does not reach the 98%" in report.abstract(summary)
    assert "regularization helped" in report.regularization_sentence(summary)
    assert "does not carry over" in report.carry_over_sentence(summary)
    lecun = report.lecun_sentence(entry("lenet5", [99.40, 99.46, 99.43]))
    assert "0.95%" in lecun and "points lower" in lecun


def test_markdown_table_widths():
    import pandas as pd

    text = report.markdown_table(pd.DataFrame([{"model": "LeNet5_Regularized", "acc": "99.12 ± 0.05", "note": "a|b"}]))
    header, rule, row = text.splitlines()
    assert rule.count("-") >= len("LeNet5_Regularized") and rule.split("|")[2].endswith(":")  # numbers right-aligned
    assert "a\\|b" in row


def test_report_fails_clearly_without_latex(monkeypatch, tmp_path):
    import shutil as shutil_module

    real_which = shutil_module.which
    monkeypatch.setattr(shutil_module, "which", lambda tool: None if tool in ("xelatex", "pandoc") else real_which(tool))
    line = assert_one_line_error(run_cli("report", "--quick", "--runs-dir", tmp_path))
    assert "make system-deps" in line and "xelatex and pandoc are missing" in line
    assert not (tmp_path / "executed").exists()  # checked before any notebook runs
