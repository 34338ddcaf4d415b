"""Old computed prose (to be replaced by the notebooks' own text)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from mnist_lib.tables import *  # noqa: F401,F403
from mnist_lib.tables import Comparison, compare, entry_pm, fmt_pm, seconds_text, markdown_table, results_table, ablation_frame, targets_frame, timing_frame

LECUN_1998_ERROR = 0.95  # LeNet-5 test error (%) in LeCun et al. 1998, without distortions
TIE_RULE = ("a difference no larger than the two standard deviations over seeds added together "
            "(the mean ± std intervals overlap) is called a tie")
# --------------------------------------------------------------------------- computed prose

def lecun_sentence(entry: Mapping[str, Any]) -> str:
    """LeNet-5's test error here against LeCun et al. (1998)."""
    err = 100 - entry["mean"]
    n = len(entry["test_acc"])
    if n > 1 and abs(err - LECUN_1998_ERROR) <= entry["std"]:
        verdict = "matches it within the seed spread"
    elif err < LECUN_1998_ERROR:
        verdict = f"is {LECUN_1998_ERROR - err:.2f} points lower"
    else:
        verdict = f"is {err - LECUN_1998_ERROR:.2f} points higher"
    return (f"LeNet-5 here has a test error of {fmt_pm(err, entry['std'], n)}% (accuracy {entry_pm(entry)}%) "
            f"against {LECUN_1998_ERROR:.2f}% (accuracy {100 - LECUN_1998_ERROR:.2f}%) reported by LeCun et al. "
            f"(1998) for LeNet-5 trained without distortions: this {verdict}.")


def regularization_verdict(c: Comparison) -> str:
    if c.seeds < 2:
        return "indicative only"
    if c.tie:
        return "regularization made no measurable difference"
    return "regularization helped" if c.diff > 0 else "regularization hurt"


def regularization_sentence(summary: Mapping[str, Any], dataset: str = "mnist") -> str:
    """Did BatchNorm + Dropout help LeNet-5, by the numbers (under each recipe run)."""
    from mnist_lib.experiments import summary_key

    entries = summary.get(dataset, {})
    parts = []
    for recipe in ("tuned", "course"):
        a = entries.get(summary_key("lenet5_regularized", recipe))
        b = entries.get(summary_key("lenet5", recipe))
        if a and b:
            c = compare(a, b, "LeNet5_Regularized", "LeNet-5")
            parts.append(f"under the {recipe} recipe, {c.sentence()}"
                         + (f": {regularization_verdict(c)}" if c.seeds >= 2 else ""))
    if not parts:
        return "LeNet-5 and LeNet5_Regularized have not both been run, so the effect of regularization is unknown."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def carry_over_sentence(summary: Mapping[str, Any]) -> str:
    """Whether the MNIST ranking of the three models holds on Fashion-MNIST."""
    mnist, fashion = summary.get("mnist", {}), summary.get("fashion-mnist", {})
    common = [k for k in MODEL_NOTEBOOKS if k in mnist and k in fashion]
    if len(common) < 2:
        return "Fashion-MNIST has not been run for enough models to compare the rankings."
    rank_m = sorted(common, key=lambda k: -mnist[k]["mean"])
    rank_f = sorted(common, key=lambda k: -fashion[k]["mean"])
    names = {k: display_name(mnist[k]) for k in common}
    same = rank_m == rank_f
    text = (f"On MNIST the order is {' > '.join(names[k] for k in rank_m)}; on Fashion-MNIST it is "
            f"{' > '.join(names[k] for k in rank_f)}: the ranking {'carries over' if same else 'does not carry over'}.")
    gaps = []
    if "lenet5" in common and "custom_mlp" in common:
        gm = mnist["lenet5"]["mean"] - mnist["custom_mlp"]["mean"]
        gf = fashion["lenet5"]["mean"] - fashion["custom_mlp"]["mean"]
        gaps.append(f"The convolutional network's lead over the MLP is {gm:+.2f} points on MNIST and {gf:+.2f} "
                    f"on Fashion-MNIST")
    if "lenet5_regularized" in common and "lenet5" in common:
        c = compare(fashion["lenet5_regularized"], fashion["lenet5"], "LeNet5_Regularized", "LeNet-5")
        gaps.append(f"on Fashion-MNIST {c.sentence()}")
    if gaps:
        text += " " + "; ".join(gaps) + "."
    return text


def abstract(summary: Mapping[str, Any]) -> str:
    """The report's abstract, every claim computed from the summary."""
    m = summary.get("mnist", {})
    seeds = max((len(e["test_acc"]) for k, e in m.items() if k in MODEL_NOTEBOOKS), default=0)
    parts = ["This report trains LeNet-5, a parameter-matched CustomMLP and LeNet5_Regularized "
             f"(BatchNorm + Dropout) on MNIST, each with {seeds} seed{'s' if seeds != 1 else ''} "
             f"({'mean ± standard deviation reported' if seeds > 1 else 'so no spread is reported'}), "
             "keeping the epoch with the best accuracy on a held-out validation split."]
    if "lenet5" in m:
        e = m["lenet5"]
        claim = "exceeds 98%, as the course writeup reported" if e["mean"] > 98 else \
            "does not reach the 98% the course writeup reported"
        parts.append(f"LeNet-5 ({e['params']:,} parameters) reaches {entry_pm(e)}% test accuracy, which {claim}.")
    if "custom_mlp" in m:
        e = m["custom_mlp"]
        parts.append(f"CustomMLP ({e['params']:,} parameters) reaches {entry_pm(e)}% "
                     f"({'above' if e['mean'] > 95 else 'below'} the writeup's 95%).")
    if "lenet5_regularized" in m:
        e = m["lenet5_regularized"]
        parts.append(f"LeNet5_Regularized ({e['params']:,} parameters) reaches {entry_pm(e)}%. "
                     + regularization_sentence(summary))
    if "best_variant" in m:
        e = m["best_variant"]
        parts.append(f"The variant with the best validation accuracy is {e['label']} with {entry_pm(e)}% "
                     f"test accuracy.")
    if "fashion-mnist" in summary:
        parts.append(carry_over_sentence(summary))
    return " ".join(parts)


WRITEUP_CLAIMS = {"lenet5": (98.0, "more than 98%"), "custom_mlp": (95.0, "95%")}


def result_paragraph(summary: Mapping[str, Any], variant: str, dataset: str = "mnist") -> str:
    """A model's numbers in a sentence or two, against the writeup's claim where it made one."""
    e = summary.get(dataset, {}).get(variant)
    if e is None:
        return f"*{variant} has not been run on {dataset}.*"
    n = len(e["test_acc"])
    name = display_name(e)
    kept = ", ".join(map(str, e["selected_epoch"]))
    val = [v for v in e["val_acc"] if v is not None]
    text = (f"Over {n} seed{'s' if n > 1 else ''}, {name} reaches **{entry_pm(e)}%** test accuracy "
            f"(test error {100 - e['mean']:.2f}%, test loss {statistics.fmean(e['test_loss']):.4f})"
            + (f", with {fmt_pm(statistics.fmean(val), _std(val), n)}% on the validation split" if val else "")
            + f"; the kept epoch{'s' if n > 1 else ''} (best validation accuracy) "
            + f"{'are' if n > 1 else 'is'} {kept} of {e['epochs']}.")
    if variant in WRITEUP_CLAIMS:
        level, words = WRITEUP_CLAIMS[variant]
        text += (f" The writeup reported {words}: this run is {'above' if e['mean'] > level else 'not above'} "
                 f"{level:.0f}%.")
    return text


def results_discussion(summary: Mapping[str, Any]) -> str:
    """The Results section's computed paragraph."""
    m = summary.get("mnist", {})
    parts = []
    if "lenet5" in m and "custom_mlp" in m:
        c = compare(m["lenet5"], m["custom_mlp"], "LeNet-5", "CustomMLP")
        parts.append(f"At matched parameter counts ({m['lenet5']['params']:,} against {m['custom_mlp']['params']:,}), "
                     f"{c.sentence()}: the convolutions' locality and weight sharing are worth more than the "
                     f"MLP's freedom." if c.diff > 0 and not c.tie else
                     f"At matched parameter counts, {c.sentence()}.")
    if "lenet5" in m:
        parts.append(lecun_sentence(m["lenet5"]))
    parts.append(regularization_sentence(summary))
    parts.append(f"(Throughout, {TIE_RULE}.)")
    return "\n\n".join(parts)


def conclusion(summary: Mapping[str, Any]) -> str:
    """The Conclusion, computed: ranking, regularization, best variant, targets."""
    m = summary.get("mnist", {})
    ranked = sorted((k for k in MODEL_NOTEBOOKS if k in m), key=lambda k: -m[k]["mean"])
    lines = []
    if ranked:
        lines.append("- Ranking on MNIST (mean test accuracy): "
                     + " > ".join(f"{display_name(m[k])} ({entry_pm(m[k])}%)" for k in ranked) + ".")
    lines.append("- " + regularization_sentence(summary))
    if "best_variant" in m:
        b = m["best_variant"]
        base = m.get("lenet5")
        gain = f", {compare(b, base, b['label'], 'LeNet-5').sentence()}" if base and b["variant"] != "lenet5" else ""
        lines.append(f"- Chosen by validation accuracy, the best variant is {b['label']} "
                     f"({b['params']:,} parameters, {entry_pm(b)}% test accuracy){gain}.")
    targets = targets_frame(summary)
    met = int((targets["result"] == "met").sum())
    lines.append(f"- {met} of {len(targets)} targets met"
                 + (f" (not met: {', '.join(targets.loc[targets['result'] != 'met', 'target'])})" if met < len(targets) else "")
                 + ".")
    if "fashion-mnist" in summary:
        lines.append("- " + carry_over_sentence(summary))
    return "\n".join(lines)


def method_paragraph(summary: Mapping[str, Any]) -> str:
    """How the numbers were made: seeds, validation split, kept epochs (a table)."""
    import pandas as pd

    m = summary.get("mnist", {})
    rows = []
    for key in [k for k in MODEL_NOTEBOOKS if k in m]:
        e = m[key]
        val = [v for v in e["val_acc"] if v is not None]
        rows.append({"model": display_name(e), "seeds": ", ".join(map(str, e["seeds"])),
                     "kept epochs": ", ".join(map(str, e["selected_epoch"])) + f" of {e['epochs']}",
                     "val acc (%)": fmt_pm(statistics.fmean(val), _std(val), len(val)) if val else "-",
                     "test acc (%)": entry_pm(e), "test acc per seed (%)": ", ".join(f"{a:.2f}" for a in e["test_acc"])})
    text = ("The writeup reports one run per model, with the test curve in view. Here every model is trained "
            "with several seeds (its initialization and batch order change; the data split does not), and "
            "every number is the mean ± sample standard deviation over seeds. From each run the kept model is "
            "the epoch with the best accuracy on 5,000 training images held out for validation, so the test "
            "set never chooses anything; the best variant is also chosen by validation accuracy.")
    return text + ("\n\n" + markdown_table(pd.DataFrame(rows)) if rows else "")


def ablation_variants(summary: Mapping[str, Any], dataset: str = "mnist") -> list[str]:
    from mnist_lib.experiments import ABLATION

    entries = summary.get(dataset, {})
    return [v for v in ABLATION if any(e.get("variant") == v for e in entries.values())]


def recipes_run(summary: Mapping[str, Any], dataset: str = "mnist") -> list[str]:
    from mnist_lib.config import PRESETS

    seen = {e.get("recipe") for k, e in summary.get(dataset, {}).items() if k != "best_variant"}
    order = ["tuned"] + [r for r in PRESETS if r != "tuned"]  # the project's recipe first
    return [r for r in order if r in seen]


def ablation_sentences(summary: Mapping[str, Any], variants: Sequence[str], recipes: Sequence[str],
                       dataset: str = "mnist", baseline: str | None = None) -> str:
    """Which regularizer helps and by how much, per recipe, computed (markdown bullets)."""
    from mnist_lib.experiments import LABELS, summary_key

    baseline = baseline or variants[0]
    base_name = "LeNet-5 without regularization"
    entries = summary.get(dataset, {})
    lines = []
    budgets = {(e["epochs"], e.get("train_images")) for v in variants for r in recipes
               if (e := entries.get(summary_key(v, r)))}
    if len(budgets) == 1:
        epochs, images = budgets.pop()
        lines.append(f"Each ablation run trains {epochs} epoch{'s' if epochs != 1 else ''}"
                     + (f" on {images:,} training images" if images else "")
                     + ": a smaller budget than the headline models', so these numbers compare rows with "
                       "each other, not with the tables above.\n")
    for recipe in recipes:
        base = entries.get(summary_key(baseline, recipe))
        if base is None:
            lines.append(f"- {recipe} recipe: the baseline ({LABELS.get(baseline, baseline)}) has not been run.")
            continue
        results = [(v, compare(entries[summary_key(v, recipe)], base, LABELS.get(v, v), base_name))
                   for v in variants if v != baseline and summary_key(v, recipe) in entries]
        if not results:
            continue
        lines.append(f"- **{recipe} recipe** ({base_name}: {entry_pm(base)}%):")
        for _, c in results:
            lines.append(f"    - {c.sentence()};")
        best_v, best_c = max(results, key=lambda r: r[1].diff)
        helped = [c.a for _, c in results if c.seeds >= 2 and not c.tie and c.diff > 0]
        if best_c.seeds < 2:
            verdict = (f"the largest gain is {LABELS.get(best_v, best_v)} ({best_c.diff:+.2f} points), from one seed, "
                       f"so no change can be told from noise")
        elif helped:
            verdict = (f"{len(helped)} of {len(results)} changes help beyond the seed spread; the most is "
                       f"{LABELS.get(best_v, best_v)}, {best_c.diff:+.2f} points")
        else:
            verdict = "no change helps beyond the seed spread: every difference is a tie or a loss"
        lines.append(f"    - in short: {verdict}.")
    for v in variants:
        for recipe in recipes:
            e = entries.get(summary_key(v, recipe))
            failed = [(seed, acc) for seed, acc in zip(e["seeds"], e["test_acc"]) if acc < FAILED_RUN] if e else []
            if failed:
                runs = ", ".join(f"seed {seed} ({acc:.2f}%)" for seed, acc in failed)
                name = base_name if v == baseline else LABELS.get(v, v)
                lines.append(f"- {name} under the {recipe} recipe did not learn in {runs}: its loss stayed "
                             f"at chance, so that row's mean and spread say more about training stability than accuracy.")
    lines.append(f"\n({TIE_RULE[0].upper() + TIE_RULE[1:]}.)")
    return "\n".join(lines)


def extended_section(extended: Mapping[str, Any] | None, summary: Mapping[str, Any]) -> str:
    """The targets under the longer budget of `report --extended`, beside the default run's."""
    if not extended or "mnist" not in extended:
        return ("No longer-budget run was made: `python -m mnist_lib report --extended` trains the models "
                "with the epochs of `report.EXTENDED` and this section then shows the targets under it.")
    entries = extended["mnist"]
    epochs = ", ".join(f"{display_name(e)} {e['epochs']}" for k, e in entries.items() if k != "best_variant")
    seconds = sum(e["seconds"] for k, e in entries.items() if k != "best_variant")
    met = [row for _, row in targets_frame(extended).iterrows() if row["result"] == "met"]
    return "\n\n".join([
        f"The 10-minute budget stops the models short of their best. The same recipe with more epochs "
        f"({epochs}; {len(next(iter(entries.values()))['seeds'])} seeds; {seconds_text(seconds)} of training "
        f"and evaluation, run by `python -m mnist_lib report --extended`) gives:",
        results_table(extended, "mnist"),
        markdown_table(targets_frame(extended)),
        f"Under this budget {len(met)} of {len(TARGETS)} targets are met; the best variant is again chosen "
        f"by validation accuracy."])


def time_sentence(summary: Mapping[str, Any], wall_seconds: float | None = None,
                  runs_dir: str | Path | None = None) -> str:
    """Total compute time from the runs' per-epoch seconds, per model, and the pipeline's wall time."""
    runs = [(d, k, e) for d, entries in summary.items() for k, e in entries.items() if k != "best_variant"]
    if not runs:
        return "No runs, no time."
    total = sum(e["seconds"] for _, _, e in runs)
    n_runs = sum(len(e["test_acc"]) for _, _, e in runs)
    slowest = max(runs, key=lambda r: r[2]["seconds"] / len(r[2]["test_acc"]))
    text = (f"Training and evaluation took {seconds_text(total)} in all, over {n_runs} runs "
            f"(the sum of their per-epoch times; the slowest per seed: {slowest[2]['label']} on {slowest[0]}, "
            f"{seconds_text(slowest[2]['seconds'] / len(slowest[2]['test_acc']))}).")
    if wall_seconds is not None:
        text += (f" The default pipeline up to this notebook (kernels, data loading, training, figures; "
                 f"not the longer budget) took {seconds_text(wall_seconds)} of wall time.")
    return text


