"""Write the notebooks in notebooks/ from one template, so the three model notebooks stay alike
and every notebook has the same setup, parameters and validation cells.

    .venv/bin/python scripts/build_notebooks.py

The notebooks are the committed source; edit this script and rerun it rather than editing the
.ipynb files by hand (or edit both). They hold narrative and calls into mnist_lib only.
"""

from __future__ import annotations

from pathlib import Path

import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT))
from mnist_lib.experiments import ABLATION  # noqa: E402

SETUP = '''\
# Make mnist_lib importable: from the repository this notebook belongs to (found by walking up
# from the working directory), else install it from REPO_URL (e.g. on Colab).
import os, subprocess, sys
from pathlib import Path

REPO_URL = "git+https://github.com/OWNER/MNIST-Classification.git"  # placeholder: your copy's URL

ROOT = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "mnist_lib" / "__init__.py").is_file()), None)
if ROOT is not None:
    os.chdir(ROOT)  # relative paths (runs/, images/, report/) are the repository's
    sys.path.insert(0, str(ROOT))
else:
    try:
        import mnist_lib  # noqa: F401  (already installed)
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", REPO_URL], check=True)'''

MODEL_PARAMETERS = '''\
# Parameters (papermill: -p NAME VALUE, or -y "seeds: [0, 1]"). None: the recipe's value (mnist_lib.PRESETS).
model = "{model}"  # this notebook's architecture, or one of its variants (mnist_lib.experiments.VARIANTS)
recipe = "tuned"  # "tuned" (the project's) or "course" (the assignment template's)
epochs = None
batch_size = None
lr = None
optimizer = None  # "sgd" or "adamw"
momentum = None
weight_decay = None
schedule = None  # "none", "onecycle" or "cosine"
augment = None  # random shifts/rotations of the training images
seeds = [0, 1, 2]
dataset = "mnist"  # or "fashion-mnist"
data_dir = None  # None: $MNIST_DATA_DIR, else ./data
device = "auto"  # auto: cuda, then mps, then cpu
limit = None  # train on the first N training images (quick runs)
val_size = None  # training images held out for validation (None: 5,000)
runs_dir = "runs"
images_dir = "images"
retrain = False  # True: train again even where a finished run of the same config exists'''

MODEL_CHECK = '''\
# Every parameter goes through the same TrainConfig as the CLI: a bad one stops here with its message.
from IPython.display import Markdown, display
from mnist_lib import plots
from mnist_lib.models import build_model, parameter_frame
from mnist_lib.notebook import check_parameters, describe_run

run = check_parameters(model, recipe, seeds, dataset, runs_dir, images_dir, retrain, architecture="{model}",
                       epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, momentum=momentum,
                       weight_decay=weight_decay, schedule=schedule, augment=augment, data_dir=data_dir,
                       device=device, limit=limit, val_size=val_size)
display(Markdown(describe_run(run)))'''

ARCHITECTURE = '''\
# The diagram is computed from the model: shapes from a dummy forward pass, parameters from its modules.
net = build_model(run.config.model, run.config.batchnorm, run.config.dropout)
fig = plots.architecture_figure(net, run.figure(), title=f"{run.name}: {sum(p.numel() for p in net.parameters()):,} parameters")'''

PARAMS_TABLE = '''\
from mnist_lib.notebook import parameter_markdown
display(Markdown(parameter_markdown(net, run.name)))'''

TRAINING = '''\
# The data is loaded once and shared by the seeds; a finished run of the same config is reused
# (retrain=True trains again). Each seed's run folder: runs/<dataset>/<recipe>/<variant>/seed<S>/.
data = run.load_data()
metrics = run.run(data)'''

CURVES = '''\
fig = plots.curves_figure([m["history"] for m in metrics], run.figure("_result"), title=f"{run.name} on {run.dataset}",
                          selected_epochs=[m["selected_epoch"] for m in metrics])'''

ERRORS = '''\
# Test-set predictions of each seed's kept model; the confusion matrix is summed over seeds.
from mnist_lib.notebook import per_class_frame, seed_predictions
from mnist_lib.report import markdown_table

predictions = seed_predictions(run, data)
labels = data.test.labels.cpu()
matrix = sum(plots.confusion_matrix(labels, p) for p in predictions.values())
fig = plots.confusion_figure(matrix, data.class_names, run.figure("_confusion"),
                             title=f"{run.name} on {run.dataset}: test confusion matrix, summed over {len(predictions)} seed(s)")'''

PER_CLASS = '''\
per_class = per_class_frame(labels, predictions, data.class_names)
display(Markdown(markdown_table(per_class.drop(columns="mean"))))'''

GALLERY = '''\
first = run.seeds[0]
fig = plots.misclassified_figure(data.unnormalize(data.test.images), labels, predictions[first], data.class_names,
                                 run.figure("_misclassified"),
                                 title=f"{run.name}, seed {first}: misclassified test images (true→predicted)")'''

SUMMARY = '''\
from mnist_lib.notebook import model_summary
display(Markdown(model_summary(run, metrics, per_class)))'''


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: list[str] | None = None):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def notebook(cells, title: str):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["title"] = title
    return nb


LENET5_INTRO = """
# LeNet-5 on MNIST

LeNet-5 (LeCun et al., 1998) as the course builds it: two convolutional layers, each followed by
max-pooling, then three fully connected layers. The course pads the 28×28 image by 2 in `conv1`
where the paper pads it to 32×32; activations are ReLU and pooling is max-pooling.

This notebook is executed by `python -m mnist_lib report` (papermill); every number below is
computed from the model or from the saved runs.
"""

LENET5_ARCH = """
## Architecture

The diagram is drawn from the model itself: each arrow is a layer with the operations that
follow it and its parameter count, each block a tensor with its shape (channels@height×width).
The two pooling layers (`pool1`, `pool2`: max-pooling 2×2, stride 2) have no trainable parameters.
"""

MLP_INTRO = """
# CustomMLP on MNIST

A multilayer perceptron 784-64-64-64-32-16-10 with ReLU, sized so its parameter count matches
LeNet-5's: the comparison is then about the architecture (weight sharing and locality of the
convolutions), not about capacity.

This notebook is executed by `python -m mnist_lib report` (papermill); every number below is
computed from the model or from the saved runs.
"""

MLP_ARCH = """
## Architecture

The 28×28 image is flattened to 784 features; six fully connected layers follow, each but the
last with ReLU.
"""

REG_INTRO = """
# LeNet5_Regularized on MNIST

LeNet-5 with the writeup's two regularizers added: Batch Normalization after each convolution and
Dropout (rate 0.2) around the fully connected layers.

This notebook is executed by `python -m mnist_lib report` (papermill); every number below is
computed from the model or from the saved runs.
"""

REG_ARCH = """
## Architecture: where BatchNorm and Dropout sit, and why

**Batch Normalization** (Ioffe & Szegedy, 2015) standardizes each channel over the mini-batch and
then rescales it with a learned scale and shift (2 parameters per channel):

- `conv1`: `Conv2d(1, 6, 5, padding=2)` then `BatchNorm2d(6)`, before the ReLU and pooling;
- `conv2`: `Conv2d(6, 16, 5)` then `BatchNorm2d(16)`.

Normalized activations keep the gradient scale steady across layers, which allows higher learning
rates and faster convergence; the noise of batch statistics also acts as a mild regularizer.

**Dropout** (Srivastava et al., 2014) zeroes each unit with probability 0.2 during training (and
scales the rest by 1/0.8), so no unit can rely on a particular other one:

- after `fc1` (and, as the writeup lists, again before `fc2`: two Dropouts in a row);
- before `fc3`, the classifier.

Both act only in training; in evaluation BatchNorm uses its running statistics and Dropout is off.
"""

COMMON_TAIL = [
    ("md", """
## Parameter calculation

Weights and biases per layer, computed from the modules (so the arithmetic cannot drift from the code):
"""),
    ("code", PARAMS_TABLE),
    ("md", """
## Training

One run per seed through `mnist_lib.experiments.run_seeds` (the same engine as the CLI): the kept
model of each run is the epoch with the best **validation** accuracy (training images held out,
as counted above), so the test set never chooses anything.
"""),
    ("code", TRAINING),
    ("md", """
## Results

Loss and accuracy per epoch on the training, validation and test sets (mean over seeds; the band
is the range over seeds).
"""),
    ("code", CURVES),
    ("md", """
## Errors

Where the kept models go wrong on the test set:
"""),
    ("code", ERRORS),
    ("md", "Per-class test accuracy (mean ± std over seeds) and the class each one is most often mistaken for:"),
    ("code", PER_CLASS),
    ("code", GALLERY),
    ("md", "## Summary"),
    ("code", SUMMARY),
]


def model_notebook(model: str, intro: str, arch: str, title: str):
    cells = [md(intro), code(SETUP), code(MODEL_PARAMETERS.format(model=model), ["parameters"]),
             code(MODEL_CHECK.format(model=model)), md(arch), code(ARCHITECTURE)]
    for kind, text in COMMON_TAIL:
        cells.append(md(text) if kind == "md" else code(text))
    return notebook(cells, title)


ABLATION = [
    md("""
# Regularization ablation

Which of the writeup's regularizers helps LeNet-5, and by how much? One regularizer is added per
row, starting from LeNet-5 with none: BatchNorm, Dropout, both (the writeup's LeNet5_Regularized),
then weight decay and data augmentation on top. Every regularizer is set explicitly, so a row means
the same thing under both recipes (the project's `tuned` and the assignment's `course`); the
recipes differ in optimizer, schedule, batch size and epochs. All variants have at most 62k
parameters, and every row uses the same seeds.
"""),
    code(SETUP),
    code('''\
# Parameters (papermill). None: the recipe's value.
dataset = "mnist"
recipes = ["tuned", "course"]
variants = ABLATION_LIST  # mnist_lib.experiments.ABLATION; the first is the baseline
seeds = [0, 1, 2]
epochs = None
limit = None
val_size = None
data_dir = None
device = "auto"
runs_dir = "runs"
images_dir = "images"
retrain = False'''.replace("ABLATION_LIST", "[" + ",\n            ".join(f'"{v}"' for v in ABLATION) + "]"), ["parameters"]),
    code('''\
from IPython.display import Markdown, display
from mnist_lib import plots
from mnist_lib.notebook import check_grid, run_grid
from mnist_lib.report import ablation_frame, ablation_sentences, markdown_table

runs = check_grid(variants, recipes, seeds=seeds, dataset=dataset, runs_dir=runs_dir, images_dir=images_dir,
                  retrain=retrain, epochs=epochs, limit=limit, val_size=val_size, data_dir=data_dir, device=device)
display(Markdown(f"{len(runs)} variant × recipe combinations, seeds {runs[0].seeds}, {runs[0].dataset}."))'''),
    md("## Training (or reusing) every variant × recipe × seed"),
    code('''\
data = runs[0].load_data()  # one load for every run
summary = run_grid(runs, data)'''),
    md("## Results: test accuracy, mean ± std over seeds"),
    code('''\
display(Markdown(markdown_table(ablation_frame(summary, variants, recipes, dataset))))'''),
    code('''\
from mnist_lib.notebook import ablation_rows
fig = plots.mean_std_figure(ablation_rows(summary, variants, recipes, dataset), runs[0].images_dir / "ablation.png",
                            title=f"Regularization ablation on {dataset}: test accuracy, mean ± std over seeds")'''),
    md("## What helps"),
    code('''\
display(Markdown(ablation_sentences(summary, variants, recipes, dataset)))'''),
]

COMPARISON = [
    md("""
# Comparison of all models

Reads the saved metrics only (no training): writes `report/summary.json`, draws the writeup's
`full_result` figure and tabulates every model over seeds, the targets, Fashion-MNIST and time.
"""),
    code(SETUP),
    code('''\
# Parameters (papermill)
runs_dir = "runs"
images_dir = "images"
summary_path = "report/summary.json"
wall_seconds = None  # the pipeline's measured wall time so far, when it runs this notebook''', ["parameters"]),
    code('''\
from IPython.display import Markdown, display
from mnist_lib import plots, report
from mnist_lib.experiments import write_summary
from mnist_lib.notebook import check_report_parameters, full_result_histories

runs_dir, images_dir, summary_path, wall_seconds = check_report_parameters(runs_dir, images_dir, summary_path, wall_seconds)
summary = write_summary(runs_dir, summary_path)
display(Markdown(f"Summary of {sum(len(v) - ('best_variant' in v) for v in summary.values())} model × recipe "
                 f"entries on {', '.join(summary)} written to `{summary_path}`."))'''),
    md("## Test accuracy and loss of every model (MNIST)"),
    code('''\
fig = plots.full_result_figure(full_result_histories(summary, runs_dir, "mnist"), images_dir / "full_result.png",
                               title="MNIST: test accuracy and loss per epoch (mean over seeds, band: range)")'''),
    md("## Final numbers, mean ± std over seeds (the kept, best-validation epoch)"),
    code('''display(Markdown(report.results_table(summary, "mnist")))'''),
    md("## LeNet-5 against LeCun et al. (1998)"),
    code('''\
display(Markdown(report.lecun_sentence(summary["mnist"]["lenet5"]) if "lenet5" in summary.get("mnist", {})
                 else "LeNet-5 has not been run on MNIST."))'''),
    md("## Did regularization help?"),
    code('''display(Markdown(report.regularization_sentence(summary) + f" (Here {report.TIE_RULE}.)"))'''),
    md("## Targets"),
    code('''display(Markdown(report.markdown_table(report.targets_frame(summary))))'''),
    md("## A longer budget"),
    code('''\
from mnist_lib.experiments import read_summary
extended_path = summary_path.with_name("summary_extended.json")  # written by `report --extended`
display(Markdown(report.extended_section(read_summary(extended_path) if extended_path.is_file() else None, summary)))'''),
    md("## Fashion-MNIST: do the MNIST conclusions carry over?"),
    code('''\
if "fashion-mnist" in summary:
    display(Markdown(report.results_table(summary, "fashion-mnist")))
    fig = plots.full_result_figure(full_result_histories(summary, runs_dir, "fashion-mnist"),
                                   images_dir / "fashion-mnist" / "full_result.png",
                                   title="Fashion-MNIST: test accuracy and loss per epoch")
display(Markdown(report.carry_over_sentence(summary)))'''),
    code('''\
from mnist_lib.notebook import dataset_rows
rows = dataset_rows(summary)
if rows:
    fig = plots.mean_std_figure(rows, images_dir / "datasets.png", group_key="dataset",
                                title="MNIST and Fashion-MNIST: test accuracy, mean ± std over seeds")'''),
    md("## Time"),
    code('''\
timing = report.timing_frame(summary)
display(Markdown(report.markdown_table(timing.drop(columns="seconds"))))
display(Markdown(report.time_sentence(summary, wall_seconds)))'''),
]

REPORT_TITLE = "MNIST-Classification: LeNet-5, CustomMLP and LeNet5_Regularized"

REPORT = [
    # The PDF's title comes from the notebook's metadata; this heading is for the HTML export only
    # (tagged html-only: mnist_lib.report drops it from the PDF).
    md(f"""
# {REPORT_TITLE}

*The course writeup (Artificial Neural Networks and Deep Learning, assignment #2), reproduced and
extended: every number below is computed from saved runs.*
"""),
    code(SETUP),
    code('''\
# Parameters (papermill). This notebook reads saved results only; it never trains.
runs_dir = "runs"
images_dir = "images"
summary_path = "report/summary.json"
wall_seconds = None  # the pipeline's measured wall time, when it runs this notebook''', ["parameters"]),
    code('''\
from IPython.display import Markdown, display
from mnist_lib import report
from mnist_lib.experiments import read_summary
from mnist_lib.notebook import check_report_parameters, parameter_markdown, show_figure
from mnist_lib.report import result_paragraph
from mnist_lib.models import build_model

runs_dir, images_dir, summary_path, wall_seconds = check_report_parameters(runs_dir, images_dir, summary_path, wall_seconds)
summary = read_summary(summary_path)'''),
    md("# Abstract"),
    code('''display(Markdown(report.abstract(summary)))'''),
    md("""
# LeNet-5

LeNet-5 (LeCun et al., 1998) as the course builds it: two 5×5 convolutions (6 and 16 maps), each
followed by ReLU and 2×2 max-pooling, then fully connected layers 400→120→84→10. The course pads
the 28×28 image by 2 in `conv1`, where the paper pads it to 32×32. The diagram is computed from the
model (a dummy forward pass gives every shape).
"""),
    code('''show_figure(images_dir / "lenet5.png")'''),
    md("## Parameter calculation"),
    code('''display(Markdown(parameter_markdown(build_model("lenet5"), "LeNet-5")))'''),
    md("## Results"),
    code('''show_figure(images_dir / "lenet5_result.png")
display(Markdown(result_paragraph(summary, "lenet5")))'''),
    md("""
# Custom MLP

A multilayer perceptron 784-64-64-64-32-16-10 with ReLU, sized to match LeNet-5's parameter count,
so the comparison is about architecture rather than capacity.
"""),
    code('''show_figure(images_dir / "custom_mlp.png")'''),
    md("## Parameter calculation"),
    code('''display(Markdown(parameter_markdown(build_model("custom_mlp"), "CustomMLP")))'''),
    md("## Results"),
    code('''show_figure(images_dir / "custom_mlp_result.png")
display(Markdown(result_paragraph(summary, "custom_mlp")))'''),
    md("""
# LeNet5_Regularized

LeNet-5 with Batch Normalization and Dropout, as the writeup lists them.
"""),
    code('''show_figure(images_dir / "lenet5_regularized.png")'''),
    md("""
## Where BatchNorm and Dropout sit, and why

**Batch Normalization** (Ioffe & Szegedy, 2015) follows each convolution, before its ReLU:
`Conv2d(1, 6, 5, padding=2)` then `BatchNorm2d(6)`, and `Conv2d(6, 16, 5)` then `BatchNorm2d(16)`.
It standardizes each channel over the mini-batch and rescales it with a learned scale and shift,
which keeps the gradient scale steady across layers, allows higher learning rates and speeds up
convergence; the noise of the batch statistics also regularizes a little.

**Dropout** with rate 0.2 (Srivastava et al., 2014) sits after `fc1`, again before `fc2` (the
writeup lists both, so there are two in a row) and before the classifier `fc3`. Zeroing random
units in training stops units from co-adapting to the training images. Both are active only in
training: evaluation uses BatchNorm's running statistics and no Dropout.
"""),
    md("## Parameter calculation"),
    code('''display(Markdown(parameter_markdown(build_model("lenet5_regularized"), "LeNet5_Regularized")))'''),
    md("## Results"),
    code('''show_figure(images_dir / "lenet5_regularized_result.png")
display(Markdown(result_paragraph(summary, "lenet5_regularized")))'''),
    md("# Results"),
    code('''show_figure(images_dir / "full_result.png")
display(Markdown(report.results_table(summary, "mnist", report.MODEL_NOTEBOOKS)))'''),
    code('''display(Markdown(report.results_discussion(summary)))'''),
    md("# Conclusion"),
    code('''display(Markdown(report.conclusion(summary)))'''),
    md("""
# Beyond the writeup

What the course writeup did not have: several seeds per model with mean ± std, the kept epoch
chosen on a validation split, a regularization ablation, explicit targets, a second dataset and
the time it all took.
"""),
    md("## Seeds and validation-based selection"),
    code('''display(Markdown(report.method_paragraph(summary)))'''),
    md("## Regularization ablation"),
    code('''show_figure(images_dir / "ablation.png")
display(Markdown(report.markdown_table(report.ablation_frame(summary, report.ablation_variants(summary),
                                                             report.recipes_run(summary)))))
display(Markdown(report.ablation_sentences(summary, report.ablation_variants(summary), report.recipes_run(summary))))'''),
    md("## Targets"),
    code('''display(Markdown(report.markdown_table(report.targets_frame(summary))))'''),
    md("## A longer budget"),
    code('''\
from mnist_lib.experiments import read_summary
extended_path = summary_path.with_name("summary_extended.json")  # written by `report --extended`
display(Markdown(report.extended_section(read_summary(extended_path) if extended_path.is_file() else None, summary)))'''),
    md("## Where LeNet-5 goes wrong"),
    code('''show_figure(images_dir / "lenet5_confusion.png")
show_figure(images_dir / "lenet5_misclassified.png")'''),
    md("## Fashion-MNIST"),
    code('''\
if "fashion-mnist" in summary:
    display(Markdown(report.results_table(summary, "fashion-mnist")))
    show_figure(images_dir / "datasets.png")
display(Markdown(report.carry_over_sentence(summary)))'''),
    md("## Speed and wall time"),
    code('''\
timing = report.timing_frame(summary)
display(Markdown(report.markdown_table(timing[timing.recipe == "tuned"].drop(columns=["seconds", "recipe"]))))
display(Markdown(report.time_sentence(summary, wall_seconds)))'''),
    md("""
# References

- Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to document recognition. *Proc. IEEE* 86(11), 1998.
- S. Ioffe, C. Szegedy. Batch Normalization: accelerating deep network training by reducing internal covariate shift. ICML 2015.
- N. Srivastava et al. Dropout: a simple way to prevent neural networks from overfitting. *JMLR* 15, 2014.
- L. N. Smith, N. Topin. Super-convergence: very fast training of neural networks using large learning rates. 2019.
- H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a novel image dataset for benchmarking machine learning algorithms. 2017.
"""),
]


def main() -> None:
    NOTEBOOKS.mkdir(exist_ok=True)
    books = {
        "lenet5": model_notebook("lenet5", LENET5_INTRO, LENET5_ARCH, "LeNet-5 on MNIST"),
        "custom_mlp": model_notebook("custom_mlp", MLP_INTRO, MLP_ARCH, "CustomMLP on MNIST"),
        "lenet5_regularized": model_notebook("lenet5_regularized", REG_INTRO, REG_ARCH, "LeNet5_Regularized on MNIST"),
        "ablation": notebook(ABLATION, "Regularization ablation"),
        "comparison": notebook(COMPARISON, "Comparison of all models"),
        "report": notebook(REPORT, REPORT_TITLE),
    }
    books["report"].cells[0].metadata["tags"] = ["html-only"]
    for name, nb in books.items():
        for i, cell in enumerate(nb.cells):
            cell.id = f"{name}-{i:02d}"  # stable ids: rebuilding gives the same files
        nbformat.validate(nb)
        nbformat.write(nb, NOTEBOOKS / f"{name}.ipynb")
        print(f"wrote {NOTEBOOKS / name}.ipynb")


if __name__ == "__main__":
    main()
