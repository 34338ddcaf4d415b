"""The report pipeline end to end: `python -m mnist_lib report --quick` runs every notebook
through papermill on a few thousand real MNIST images and exports the HTML and the PDF, all
under a temporary folder (the committed images/, report/ and notebooks/executed/ are left
alone); the PDF's text holds the section titles and the numbers of the saved metrics.
Also papermill's own CLI on a model notebook, and how bad parameters and failing notebooks end.
All but the README check run notebooks or the CLI in a process: marked slow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, cli_command

TOOLS = ("xelatex", "pandoc", "pdftotext")
FASHION = Path("/usr/share/datasets/fashion-mnist")
COMMITTED = ("images", "report", "notebooks/executed")


def need_tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: run `make system-deps`")


def env() -> dict[str, str]:
    values = dict(os.environ)
    values["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([values["PYTHONPATH"]] if values.get("PYTHONPATH") else []))
    return values


def snapshot() -> dict[str, float]:
    """Modification times of everything under the committed output folders."""
    return {str(p): p.stat().st_mtime for folder in COMMITTED for p in (REPO / folder).rglob("*") if p.is_file()}


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def quick(tmp_path_factory, real_data_dir):
    need_tools()
    out = tmp_path_factory.mktemp("quick_report")
    before = snapshot()
    args = ["report", "--quick", "--runs-dir", out, "--data-dir", real_data_dir]
    if not FASHION.is_dir():
        args.append("--no-fashion")
    # In two parts, as on a GPU machine without LaTeX: train and summarize, then render elsewhere.
    train = subprocess.run(cli_command(*args, "--train-only"), env=env(), cwd=REPO, capture_output=True, text=True,
                           timeout=900)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert (out / "report" / "summary.json").is_file() and not (out / "report" / "report.pdf").exists()
    trained = json.loads((out / "report" / "summary.json").read_text())
    # The run records alone must be enough for the report: no model or checkpoint file is left.
    for path in [*out.rglob("*.pt")]:
        path.unlink()
    proc = subprocess.run(cli_command(*args, "--report-only"), env=env(), cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"out": out, "proc": proc, "train": train, "trained": trained, "before": before,
            "fashion": FASHION.is_dir()}


@pytest.mark.slow
def test_report_only_keeps_the_training_runs_environment_and_wall_time(quick):
    """--report-only trains nothing: its summary's environment (and the study's wall time) comes
    from the same runs' records as the training part's."""
    summary = json.loads((quick["out"] / "report" / "summary.json").read_text())
    trained = quick["trained"]
    assert summary["environment"] == trained["environment"]
    assert summary["environment"]["wall_seconds"] > 0
    assert summary["environment"]["runs"] == len(list(quick["out"].rglob("metrics.json")))
    # the plan as recorded when it trained, estimates included (they came from that machine's probe)
    assert summary["plan"] == trained["plan"] and summary["workers"] == trained["workers"]


@pytest.mark.slow
def test_report_only_renders_from_the_run_records_alone(quick):
    assert not list(quick["out"].rglob("*.pt"))  # removed before --report-only
    records = [json.loads(p.read_text()) for p in quick["out"].rglob("metrics.json")]
    assert records and all("analysis" in r or "diverged" in r for r in records)
    assert (quick["out"] / "report" / "report.pdf").stat().st_size > 0
    env = json.loads((quick["out"] / "report" / "summary.json").read_text())["environment"]
    assert {(r["environment"]["torch"], r["environment"]["device"].split(":")[0]) for r in records} == \
        {(env["torch"], env["device_type"])}
    assert env["runs"] == len(records)


def pdf_pages(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")


@pytest.mark.slow
def test_the_pdf_answers_the_assignment_within_nine_pages(quick):
    pages = pdf_pages(quick["out"] / "report" / "report.pdf")
    appendix = next(i for i, page in enumerate(pages) if re.search(r"^\s*Appendix\s*$", page, re.M))
    assert not pages[appendix].split("Appendix")[0].strip()  # the appendix starts on a page of its own
    assert appendix <= 9, f"the main text runs to {appendix} pages"
    text = words(" ".join(pages)).replace("’", "'")
    assert "The assignment, answered" in text and "The writeup's claims and what the study measured" in text
    claims = ["LeNet-5 exceeds 98%", "CustomMLP reaches 95%", "BatchNorm cuts the epochs", "BatchNorm enables higher",
              "BatchNorm + Dropout improve"]
    table = text[text.index("the writeup's claim"):]
    for claim in claims:
        assert claim in table
    verdicts = re.findall(r"not supported at this sample size|does not hold|holds", table[:1500])
    assert len(verdicts) >= len(claims)


@pytest.mark.slow
def test_a_quick_render_lists_the_premises_its_numbers_break(quick):
    text = words(pdf_pages(quick["out"] / "report" / "report.pdf")[0]).replace("’", "'")
    assert "Quick run: these sentences' premises do not hold for its numbers" in text


@pytest.mark.slow
def test_a_full_render_stops_on_a_broken_premise_and_names_the_sentence(quick, tmp_path):
    from mnist_lib.errors import MnistLibError
    from mnist_lib.pipeline import run_notebook

    out = quick["out"]
    params = dict(runs_dir=str(out), images_dir=str(tmp_path / "images"), summary_path=str(out / "report" / "summary.json"),
                  strict=True)
    with pytest.raises(MnistLibError, match=r"report.ipynb .*premise for .* does not hold .*rewrite that sentence"):
        run_notebook("report", tmp_path / "report.ipynb", params)


@pytest.mark.slow
def test_train_only_and_report_only_exclude_each_other(tmp_path):
    proc = subprocess.run(cli_command("report", "--quick", "--runs-dir", tmp_path, "--train-only", "--report-only"),
                          env=env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error:") and "--train-only" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_quick_pipeline_writes_every_output(quick):
    out = quick["out"]
    for name in ("report.html", "report.pdf", "summary.json"):
        assert (out / "report" / name).stat().st_size > 1000, name
    executed = sorted(p.name for p in (out / "executed").glob("*.ipynb"))
    from mnist_lib.plan import QUICK

    expected = {f"{s.name}.ipynb" for s in QUICK if quick["fashion"] or s.dataset == "mnist"}
    expected |= {"comparison.ipynb", "report.ipynb"}
    assert expected <= set(executed), executed
    for name in executed:  # executed copies are the record: parameters injected, no error anywhere
        nb = json.loads((out / "executed" / name).read_text())
        assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"]), name
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, (name, errors[:1])
        # repository-relative paths only (papermill's own record included)
        assert str(REPO) not in (out / "executed" / name).read_text(), name
    images = out / "images"
    for name in ("lenet5", "custom_mlp", "lenet5_regularized"):
        for suffix in ("", "_result", "_confusion", "_misclassified"):
            assert (images / f"{name}{suffix}.png").stat().st_size > 5000, f"{name}{suffix}.png"
    for name in ("full_result.png", "ablation.png", "lenet5_conv1.png", "shift_robustness.png"):
        assert (images / name).stat().st_size > 5000, name
    if quick["fashion"]:
        assert (images / "fashion-mnist" / "lenet5_result.png").is_file()  # MNIST figures not overwritten


@pytest.mark.slow
def test_quick_pipeline_leaves_committed_outputs_alone(quick):
    assert snapshot() == quick["before"]


@pytest.mark.slow
def test_quick_pipeline_says_what_it_wrote_and_how_long_the_study_took(quick):
    stdout = quick["proc"].stdout
    assert re.search(r"wrote .*report\.html and .*report\.pdf: the study('s runs)? took ", stdout), stdout[-2000:]
    assert "study: runs done" in quick["train"].stdout  # the overall progress bar


def pdf_text(path: Path, *options: str) -> str:
    return words(subprocess.run(["pdftotext", *options, str(path), "-"], capture_output=True, text=True,
                                check=True).stdout)


def report_headings() -> list[str]:
    """The report notebook's section headings (its markdown `#` and `##` lines), as the PDF numbers them."""
    source = (REPO / "notebooks" / "report.py").read_text()
    return [words(m.group(1)) for m in re.finditer(r"^# #{1,2} (.+)$", source, re.M)]


def test_report_headings_are_read_from_the_notebook():
    headings = report_headings()
    assert "Abstract" in headings and "References" in headings
    assert any(re.match(r"\d+ ", h) for h in headings) and any(re.match(r"\d+\.\d+ ", h) for h in headings)


@pytest.mark.slow
def test_pdf_has_the_sections_and_the_measured_numbers(quick):
    out = quick["out"]
    text = pdf_text(out / "report" / "report.pdf").replace("\u2019", "'")
    for title in report_headings():  # every section of the notebook, numbered as written
        assert title in text, title
    # The numbers come from the saved metrics: each model's accuracy (one seed in the quick run) by its name
    for variant, name in (("lenet5", "LeNet-5"), ("custom_mlp", "CustomMLP"), ("lenet5_regularized", "LeNet5_Regularized")):
        metrics = json.loads((out / "mnist" / "tuned" / variant / "seed0" / "metrics.json").read_text())
        accuracy = metrics["final"]["test_acc"]
        assert re.search(rf"{re.escape(name)}\W[^%]{{0,20}}{accuracy:.2f}%", text), (name, accuracy)
    from mnist_lib.models import build_model, count_parameters
    from mnist_lib.registry import MODELS

    for name in MODELS:  # the parameter counts, as the modules count them
        assert f"{count_parameters(build_model(name)):,}" in text
    assert "\\(" not in text and "\\begin" not in text and "$" not in text  # no raw LaTeX or math left over
    # numbered, captioned figures and tables, each referred to in the text
    for kind in ("Figure", "Table"):
        numbers = sorted({int(n) for n in re.findall(rf"{kind} (\d+):", text)})
        assert numbers and numbers == list(range(1, len(numbers) + 1)), (kind, numbers)
        for n in numbers:
            assert len(re.findall(rf"{kind} {n}\b", text)) >= 2, f"{kind} {n} is never referred to"


@pytest.mark.slow
def test_pdf_says_each_thing_once(quick):
    text = pdf_text(quick["out"] / "report" / "report.pdf")
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 60]
    repeated = {s for s in sentences if sentences.count(s) > 1}
    assert not repeated, sorted(repeated)[:3]


@pytest.mark.slow
def test_html_is_self_contained_without_code(quick):
    html = (quick["out"] / "report" / "report.html").read_text()
    figures = sorted({int(n) for n in re.findall(r"Figure (\d+):", pdf_text(quick["out"] / "report" / "report.pdf"))})
    assert figures and html.count("data:image/png;base64") >= len(figures)  # every figure embedded
    for n in figures:
        assert re.search(rf'alt="Figure {n}: ', html), f"Figure {n} has no alt text"  # its caption
    assert not re.search(r"<img[^>]+src=\"(?!data:)", html)
    assert not re.search(r"<script[^>]+src=", html)  # nothing fetched from elsewhere
    for code in ("show_figure(", "check_report_parameters", "import "):
        assert code not in html, code
    assert "No description has been provided" not in html  # every figure's alt text is its caption
    assert re.search(r'alt="Figure 1: ', html)


@pytest.mark.slow
def test_papermill_cli_runs_a_model_notebook(tmp_path, real_data_dir):
    out = tmp_path / "out.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", "notebooks/lenet5.ipynb", str(out), "-p", "epochs", "1",
         "-p", "limit", "2000", "-p", "seeds", "0", "-p", "val_size", "1000", "-p", "data_dir", str(real_data_dir),
         "-p", "runs_dir", str(tmp_path / "runs"), "-p", "images_dir", str(tmp_path / "images")],
        env=env(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "runs" / "mnist" / "tuned" / "lenet5" / "seed0" / "metrics.json").read_text())
    assert metrics["config"]["epochs"] == 1 and metrics["config"]["limit"] == 2000 and metrics["sizes"]["train"] == 2000
    for suffix in ("", "_result", "_confusion", "_misclassified"):
        assert (tmp_path / "images" / f"lenet5{suffix}.png").is_file()
    summary = [c for c in json.loads(out.read_text())["cells"]
               if any(call in "".join(c["source"]) for call in ("model_summary(", "show_summary("))][0]
    assert f"{metrics['final']['test_acc']:.2f}%" in "".join(summary["outputs"][0]["data"]["text/markdown"])


@pytest.mark.slow
def test_papermill_rejects_a_wrong_type_with_the_config_message(tmp_path):
    from mnist_lib.config import TrainConfig
    from mnist_lib.errors import MnistLibError

    with pytest.raises(MnistLibError) as error:
        TrainConfig.from_dict({"epochs": "abc"})
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", "notebooks/lenet5.ipynb", str(tmp_path / "out.ipynb"),
         "-p", "epochs", "abc", "-p", "runs_dir", str(tmp_path / "runs")],
        env=env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "MnistLibError" in proc.stderr and str(error.value) in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "runs").exists()  # stopped before any training


@pytest.mark.slow
def test_report_names_the_failing_notebook_and_cell(tmp_path):
    need_tools()
    proc = subprocess.run(cli_command("report", "--quick", "--device", "tpu", "--runs-dir", tmp_path),
                          env=env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    # two notebooks start side by side: either can be the one that fails first
    assert re.match(r"error: notebook (lenet5|custom_mlp)\.ipynb \(\w+\.ipynb\) failed in cell \[\d+\] .*MnistLibError: "
                    r"device 'tpu' is unknown", lines[0]), lines[0]


def test_update_readme_fills_blocks_from_saved_json(tmp_path):
    """The README's numbers come from summary.json: change the metrics, the README follows."""
    import json

    from mnist_lib.errors import MnistLibError
    from mnist_lib.experiments import aggregate
    from mnist_lib.readme import update_readme

    def fake(variant, accs, dataset="mnist"):
        metrics = [{"final": {"test_acc": a, "val_acc": a - 0.1, "test_loss": 0.03}, "config": {"seed": s, "epochs": 4, "lr": 0.1},
                    "selected_epoch": 4, "params": 61706, "sizes": {"train": 55000},
                    "history": [{"seconds": 2.0, "train_seconds": 1.5}] * 4} for s, a in enumerate(accs)]
        return {**aggregate(metrics), "variant": variant, "recipe": "tuned", "label": variant}

    summary = {"mnist": {"lenet5": fake("lenet5", [99.31, 99.37, 99.29]),
                         "custom_mlp": fake("custom_mlp", [97.81, 97.93, 97.88]),
                         "lenet5_regularized": fake("lenet5_regularized", [99.41, 99.38, 99.45])}}
    summary["mnist"]["best_variant"] = {**summary["mnist"]["lenet5_regularized"], "chosen_by": "validation"}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- models:begin -->\n<!-- models:end -->\n"
                      "<!-- results:begin -->\nold numbers 12.34\n<!-- results:end -->\noutro\n")
    assert update_readme(readme, tmp_path / "summary.json", tmp_path / "missing.json") == ["models", "results"]
    assert "| LeNet-5 | 61,706 |" in readme.read_text().replace("  ", " ")  # counted from the module
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "99.32 ± 0.04" in text  # LeNet-5: mean and std of the three seeds above
    assert "97.87 ± 0.06" in text
    # the one environment the runs came from, with its sittings and wall time
    summary["environment"] = {"torch": "2.14.1", "device_type": "cpu", "device_name": "EPYC", "runs": 12,
                              "sittings": 2, "wall_seconds": 600.0}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    update_readme(readme, tmp_path / "summary.json", None)
    assert "12 runs trained on EPYC (`cpu`, torch 2.14.1) in 2 sittings in 10.0 min of wall time" in readme.read_text()
    broken = tmp_path / "NOBLOCK.md"
    broken.write_text("no markers")
    with pytest.raises(MnistLibError, match="no <!-- models:begin -->"):
        update_readme(broken, tmp_path / "summary.json", None)
    broken.write_text("<!-- models:begin -->\n<!-- models:end -->\nno results block")
    with pytest.raises(MnistLibError, match="no <!-- results:begin -->"):
        update_readme(broken, tmp_path / "summary.json", None)
