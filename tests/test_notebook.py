"""The notebooks' parameter checks (mnist_lib.notebook) and the report's tables and computed
checks, on hand-made inputs: no data, no training."""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error, run_cli
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


def test_check_parameters_uses_the_recipe_for_none(checkable):
    run = check_parameters("lenet5", "tuned", [0, 1], "mnist", "runs", "images", False, architecture="lenet5",
                           epochs=None, lr=None, batch_size=None, limit=2000)
    assert run.config.epochs == PRESETS["tuned"]["epochs"] and run.config.lr == PRESETS["tuned"]["lr"]
    assert run.config.limit == 2000 and run.seeds == [0, 1]
    assert str(run.figure("_result")).endswith("images/lenet5_result.png")


def test_check_parameters_fashion_figures_go_elsewhere(checkable):
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
    (dict(model="lenet5", recipe="turbo"), "recipe 'turbo' is unknown"),
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


def test_best_variant_runs_through_its_architectures_notebook(checkable):
    run = check_parameters("lenet5_batchnorm", architecture="lenet5")
    assert run.config.model == "lenet5" and run.config.batchnorm is True
    assert run.name == "LeNet-5 (lenet5_batchnorm)"


def test_check_grid(checkable):
    runs = check_grid(["ablation_none", "ablation_dropout"], "tuned,course", seeds=[0], epochs=1)
    assert [(r.variant, r.recipe) for r in runs] == [("ablation_none", "tuned"), ("ablation_dropout", "tuned"),
                                                      ("ablation_none", "course"), ("ablation_dropout", "course")]
    with pytest.raises(MnistLibError, match="variant 'nope' is unknown"):
        check_grid(["nope"], ["tuned"])


def test_check_report_parameters():
    from pathlib import Path

    assert check_report_parameters("r", "i", "s.json") == (Path("r"), Path("i"), Path("s.json"))
    with pytest.raises(MnistLibError, match="summary_path must be a folder path"):
        check_report_parameters(summary_path=12)


# --------------------------------------------------------------------------- tables and sentences

def test_report_fails_clearly_without_latex(monkeypatch, tmp_path):
    import shutil as shutil_module

    real_which = shutil_module.which
    monkeypatch.setattr(shutil_module, "which", lambda tool: None if tool in ("xelatex", "pandoc") else real_which(tool))
    line = assert_one_line_error(run_cli("report", "--quick", "--runs-dir", tmp_path))
    assert "make system-deps" in line and "xelatex and pandoc are missing" in line
    assert not (tmp_path / "executed").exists()  # checked before any notebook runs


# --------------------------------------------------------------------------- jupytext sources, setup cells, Colab

NOTEBOOK_NAMES = ["lenet5", "custom_mlp", "lenet5_regularized", "ablation", "comparison", "report"]


def _notebook_dir():
    from conftest import REPO

    return REPO / "notebooks"


def _cells(nb) -> list[tuple[str, str, list[str]]]:
    """What a jupytext pair must agree on: each cell's type, source and tags (`parameters`, `html-only`)."""
    return [(c.cell_type, c.source, sorted(c.metadata.get("tags", []))) for c in nb.cells]


def pair_mismatches(folder) -> list[str]:
    """Why the jupytext pairs (<name>.py percent source, <name>.ipynb) in folder are out of sync; [] when in sync."""
    import jupytext
    import nbformat

    sources = {p.stem for p in folder.glob("*.py")}
    books = {p.stem for p in folder.glob("*.ipynb")}
    problems = [f"{n}.py has no {n}.ipynb: run `make notebooks`" for n in sorted(sources - books)]
    problems += [f"{n}.ipynb has no jupytext source {n}.py" for n in sorted(books - sources)]
    for name in sorted(sources & books):
        text = _cells(jupytext.read(folder / f"{name}.py"))
        book = _cells(nbformat.read(folder / f"{name}.ipynb", as_version=4))
        if text != book:
            at = next((i for i, (a, b) in enumerate(zip(text, book)) if a != b), min(len(text), len(book)))
            problems.append(f"{name}.ipynb differs from {name}.py at cell {at} "
                            f"({len(book)} vs {len(text)} cells): run `make notebooks`")
    return problems


@pytest.mark.slow
def test_notebook_pairs_are_in_sync():
    folder = _notebook_dir()
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted(NOTEBOOK_NAMES)
    assert pair_mismatches(folder) == []


@pytest.mark.slow
def test_committed_notebooks_have_no_outputs_and_are_paired():
    import nbformat

    for name in NOTEBOOK_NAMES:
        nb = nbformat.read(_notebook_dir() / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent", name
        assert nb.metadata.get("title"), name  # the PDF's title comes from it
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_pair_check_sees_an_edit(tmp_path):
    import shutil

    import nbformat

    for name in ("lenet5", "report"):
        for suffix in (".py", ".ipynb"):
            shutil.copy(_notebook_dir() / f"{name}{suffix}", tmp_path)
    assert pair_mismatches(tmp_path) == []
    source = tmp_path / "lenet5.py"
    text = source.read_text()
    assert '"tuned"' in text.split('# %% tags=["parameters"]', 1)[1].split("# %%", 1)[0]  # in the parameters cell
    source.write_text(text.replace('"tuned"', '"course"', 1))
    n = len(_cells(nbformat.read(tmp_path / "lenet5.ipynb", as_version=4)))
    assert pair_mismatches(tmp_path) == [f"lenet5.ipynb differs from lenet5.py at cell 1 ({n} vs {n} cells): "
                                         "run `make notebooks`"]  # a changed source
    source.write_text(text.replace('# %% tags=["parameters"]', "# %%", 1))  # the parameters tag lost
    assert pair_mismatches(tmp_path) == [f"lenet5.ipynb differs from lenet5.py at cell 1 ({n} vs {n} cells): "
                                         "run `make notebooks`"]
    source.write_text(text + '\n# %% [markdown]\n# A new cell\n')
    assert pair_mismatches(tmp_path) == [f"lenet5.ipynb differs from lenet5.py at cell {n} ({n} vs {n + 1} cells): "
                                         "run `make notebooks`"]
    source.unlink()
    assert pair_mismatches(tmp_path) == ["lenet5.ipynb has no jupytext source lenet5.py"]


def _first_cells(name: str):
    import jupytext

    return jupytext.read(_notebook_dir() / f"{name}.py").cells


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebooks_start_with_title_parameters_and_bootstrap(name):
    import ast

    title, params, boot, *_ = _first_cells(name)
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    assert params.metadata.get("tags") == ["parameters"]
    for statement in ast.parse(params.source).body:  # plain values only: papermill replaces them
        assert isinstance(statement, ast.Assign), ast.dump(statement)
        for target in statement.targets:  # `a = b = None` and `a, b = 1, 2` are plain too
            names = target.elts if isinstance(target, ast.Tuple) else [target]
            assert all(isinstance(n, ast.Name) for n in names), ast.dump(target)
        ast.literal_eval(statement.value)
    assert 'REPO_URL = ""' in params.source
    # where to read about Colab: the notebook names REPO_URL or points to the README, which explains it
    assert any(word in cell.source for cell in (title, params) for word in ("REPO_URL", "README")), name
    readme = (_notebook_dir().parent / "README.md").read_text()
    assert "REPO_URL" in readme and "git+https://github.com/<you>/MNIST-Classification.git" in readme

    def code_lines(source):
        return [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    code = code_lines(boot.source)
    assert code == code_lines(_first_cells("lenet5")[2].source)  # one bootstrap, the same everywhere
    assert len(code) <= 12 and not any("chdir" in line for line in code)


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebooks_print_no_absolute_paths(name):
    """Executed notebooks are committed: no cell resolves a path to show it."""
    for cell in _first_cells(name)[3:]:
        for call in ("resolve()", "absolute()", "cwd()", "__file__", "expanduser("):
            assert call not in cell.source, (name, call)


def _run_bootstrap(cwd, prelude: str):
    """The bootstrap cell in a bare interpreter (-S: no site-packages, so no installed mnist_lib)."""
    import subprocess
    import sys

    code = prelude + "\n" + _first_cells("lenet5")[2].source
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_bootstrap_finds_the_repository_without_chdir():
    from conftest import REPO

    proc = _run_bootstrap(REPO / "notebooks", 'REPO_URL = ""\nimport atexit, os, sys\n'
                          'atexit.register(lambda: print(sys.path[0], os.getcwd()))')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(REPO), str(REPO / "notebooks")]  # on sys.path, and no chdir


def test_bootstrap_outside_the_repository(tmp_path):
    proc = _run_bootstrap(tmp_path, 'REPO_URL = ""')
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: mnist_lib is neither around this notebook nor installed: set REPO_URL")
    recorded = _run_bootstrap(tmp_path, 'REPO_URL = "git+https://example.invalid/you/MNIST-Classification.git"\n'
                              "import subprocess\nsubprocess.run = lambda args, **kw: print(args[1:])")
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.strip() == ("['-m', 'pip', 'install', '--quiet', "
                                       "'git+https://example.invalid/you/MNIST-Classification.git']")


@pytest.mark.slow
def test_model_notebook_runs_outside_the_repository(tmp_path, real_data_dir, monkeypatch):
    """The Colab situation: the notebook alone in a folder, the package installed (not the repository
    around it), MNIST where data_dir says; relative runs_dir / images_dir land under the working directory."""
    import json
    import shutil
    import subprocess
    import sys

    import papermill

    from conftest import REPO

    src, site, work = tmp_path / "src", tmp_path / "site", tmp_path / "colab"
    src.mkdir()
    work.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src)
    shutil.copytree(REPO / "mnist_lib", src / "mnist_lib", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True, timeout=300)
    shutil.copy(_notebook_dir() / "lenet5.ipynb", work)
    assert not any((p / "mnist_lib" / "__init__.py").is_file() for p in (work, *work.parents))
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    found = subprocess.run([sys.executable, "-c", "import mnist_lib; print(mnist_lib.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True)
    assert found.stdout.strip() == str(site / "mnist_lib" / "__init__.py")  # what the kernel imports
    papermill.execute_notebook(str(work / "lenet5.ipynb"), str(work / "out.ipynb"), kernel_name="python3",
                               cwd=str(work), progress_bar=False,
                               parameters=dict(limit=2000, epochs=1, seeds=[0], val_size=500,
                                               data_dir=str(real_data_dir), runs_dir="runs", images_dir="images"))
    metrics = json.loads((work / "runs" / "mnist" / "tuned" / "lenet5" / "seed0" / "metrics.json").read_text())
    assert metrics["config"]["epochs"] == 1 and metrics["sizes"]["train"] == 2000 and metrics["sizes"]["val"] == 500
    for suffix in ("", "_result", "_confusion", "_misclassified"):
        assert (work / "images" / f"lenet5{suffix}.png").is_file(), suffix
    assert not (work / "data").exists()  # data_dir was used, nothing downloaded
    outputs = json.dumps([c.get("outputs", []) for c in json.loads((work / "out.ipynb").read_text())["cells"]])
    for absolute in {str(tmp_path), str(REPO), str(real_data_dir), sys.prefix}:
        assert absolute not in outputs, absolute


# --------------------------------------------------------------------------- bad inputs stop a notebook early

@pytest.fixture
def checkable(monkeypatch, tmp_path, tiny_root):
    """What a successful check_parameters needs, without the real data or the network: a data
    folder ($MNIST_DATA_DIR) holding MNIST (synthetic) and Fashion-MNIST's four file names, and
    a scratch working directory for the relative runs/ and images/ folders."""
    import shutil

    from mnist_lib.data import IDX_FILES

    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    fashion = data / "FashionMNIST" / "raw"
    fashion.mkdir(parents=True)
    for name in IDX_FILES[True] + IDX_FILES[False]:
        shutil.copy(data / "MNIST" / "raw" / name, fashion / name)
    monkeypatch.setenv("MNIST_DATA_DIR", str(data))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return data


@pytest.fixture
def no_network(monkeypatch):
    """Downloads fail at once (a proxy on a closed port), here and in the processes started here."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def _cli_message(*args) -> str:
    """The one line the CLI prints for ``train ARGS``, without its `error: `."""
    line = assert_one_line_error(run_cli("train", *args))
    return line[len("error: "):]


def _notebook_error(tmp_path, **parameters):
    """Run notebooks/lenet5.ipynb with papermill; the PapermillExecutionError it must end with."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from conftest import REPO

    with pytest.raises(PapermillExecutionError) as error:
        papermill.execute_notebook(str(REPO / "notebooks" / "lenet5.ipynb"), str(tmp_path / "executed.ipynb"),
                                   parameters=parameters, kernel_name="python3", cwd=str(REPO),
                                   progress_bar=False, log_output=False)
    assert "check_parameters(" in error.value.source  # stopped in the first cells, before any training
    return error.value


def test_check_parameters_rejects_missing_data_and_unwritable_runs_dir(checkable, no_network, tmp_path):
    from mnist_lib.files import ensure_writable_dir

    missing = tmp_path / "nowhere"
    with pytest.raises(MnistLibError) as error:
        check_parameters("lenet5", data_dir=str(missing))
    assert str(error.value) == _cli_message("--data-dir", missing, "--out", tmp_path / "out", "--quiet")
    assert not missing.exists()  # the failed download leaves nothing behind
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MnistLibError) as error:
        check_parameters("lenet5", data_dir=str(empty))
    assert str(error.value) == _cli_message("--data-dir", empty, "--out", tmp_path / "out", "--quiet")
    (tmp_path / "a_file").write_text("")
    blocked = tmp_path / "a_file" / "runs"
    with pytest.raises(MnistLibError) as expected:
        ensure_writable_dir(blocked, "runs_dir")
    with pytest.raises(MnistLibError) as error:
        check_parameters("lenet5", runs_dir=str(blocked))
    assert str(error.value) == str(expected.value) == f"runs_dir {blocked} is not writable (Not a directory): choose another folder"
    with pytest.raises(MnistLibError, match="images_dir .* is not writable"):
        check_parameters("lenet5", images_dir=str(blocked))
    assert check_parameters("lenet5", data_dir=str(checkable)).config.data_dir == str(checkable)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["wrong type", "unknown model", "missing data folder", "data folder without data",
                                  "unwritable runs_dir"])
def test_notebook_stops_on_bad_input_with_the_cli_message(case, no_network, tmp_path):
    """papermill's error is the one line the CLI prints, raised by the parameter check cell;
    nothing is trained."""
    from mnist_lib.files import ensure_writable_dir

    runs = tmp_path / "runs"
    parameters = dict(runs_dir=str(runs), images_dir=str(tmp_path / "images"), epochs=1, limit=1000, seeds=[0])
    if case == "wrong type":
        parameters["epochs"] = "abc"
        with pytest.raises(MnistLibError) as expected:
            check_parameters("lenet5", epochs="abc")
        message = str(expected.value)
    elif case == "unknown model":
        parameters["model"] = "resnet"
        with pytest.raises(MnistLibError) as expected:
            check_parameters("resnet")
        message = str(expected.value)
    elif case in ("missing data folder", "data folder without data"):
        parameters["data_dir"] = str(tmp_path / "data")
        if case == "data folder without data":
            (tmp_path / "data").mkdir()
        message = _cli_message("--data-dir", tmp_path / "data", "--out", tmp_path / "cli", "--quiet")
    else:
        (tmp_path / "a_file").write_text("")
        parameters["runs_dir"] = str(tmp_path / "a_file" / "runs")
        with pytest.raises(MnistLibError) as expected:
            ensure_writable_dir(tmp_path / "a_file" / "runs", "runs_dir")
        message = str(expected.value)
    error = _notebook_error(tmp_path, **parameters)
    assert error.ename == "MnistLibError"
    assert error.evalue == message
    assert not any(runs.rglob("metrics.json")) and not any(runs.rglob("checkpoint.pt"))


@pytest.mark.slow
def test_report_command_stops_on_a_missing_data_folder(no_network, tmp_path):
    """`python -m mnist_lib report` with a data folder that holds no MNIST: one `error:` line on
    stderr (the notebook, the cell, the loader's message), exit status 2, nothing trained."""
    import shutil
    import subprocess

    from conftest import REPO, cli_command, cli_env

    for tool in ("xelatex", "pandoc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} missing: run `make system-deps`")
    missing = tmp_path / "no_data"
    proc = subprocess.run(cli_command("report", "--quick", "--runs-dir", tmp_path / "q", "--data-dir", missing),
                          env=cli_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    line = assert_one_line_error(proc)
    message = _cli_message("--data-dir", missing, "--out", tmp_path / "cli", "--quiet")
    import re

    # the first model notebook to fail names itself (the plan runs notebooks side by side)
    assert re.match(r"error: notebook (lenet5|custom_mlp|lenet5_regularized)\.ipynb \(\S+\) failed in cell \[\d+\] "
                    r"`[^`]+`: ", line), line  # the notebook, the cell and the start of its source
    assert f"MnistLibError: {message} (executed copy: " in line, line
    assert not any((tmp_path / "q").rglob("metrics.json"))
