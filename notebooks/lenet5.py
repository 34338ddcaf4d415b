# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: title
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   title: LeNet-5 on MNIST
# ---

# %% [markdown]
# # LeNet-5 on MNIST
#
# LeNet-5 (LeCun et al., 1998) as the course builds it: two convolutional layers, each followed by
# max-pooling, then three fully connected layers. The course pads the 28×28 image by 2 in `conv1`
# where the paper pads it to 32×32; activations are ReLU and pooling is max-pooling.
#
# This notebook is executed by `python -m mnist_lib report` (papermill); every number below is
# computed from the model or from the saved runs.
#
# **Parameters** (the cell tagged `parameters`; papermill: `-p NAME VALUE`, or `-y "seeds: [0, 1]"`):
# `model` (this architecture, or one of its variants), `recipe` (`tuned` or `course`); the training
# settings `epochs`, `batch_size`, `lr`, `optimizer`, `momentum`, `weight_decay`, `schedule`, `augment`
# (`None`: the recipe's value); `seeds`; `dataset` (`mnist` or `fashion-mnist`); `data_dir` (`None`:
# `$MNIST_DATA_DIR`, else `./data`); `device` (`auto` takes the GPU when there is one); `limit` and
# `val_size` (training images used, held out); `runs_dir` and `images_dir` (relative to the working
# directory); `retrain` (train again even where a finished run of the same config exists); `REPO_URL`.
#
# **Run it anywhere.** In a checkout of the repository (Jupyter, papermill) the setup cell finds
# `mnist_lib` by walking up from the working directory, or uses the installed package. On Colab, set
# `REPO_URL` in the parameters cell to a pip-installable URL of your copy of the repository, e.g.
# `git+https://github.com/<you>/MNIST-Classification.git`, and run all cells: MNIST is downloaded into
# `./data` unless `data_dir` (or `$MNIST_DATA_DIR`) says where it is.

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE, or -y "seeds: [0, 1]"). None: the recipe's value (mnist_lib.PRESETS).
model = "lenet5"  # this notebook's architecture, or one of its variants (mnist_lib.experiments.VARIANTS)
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
retrain = False  # True: train again even where a finished run of the same config exists
# Colab: set to a pip-installable URL of your copy of this repository, e.g.
# git+https://github.com/<you>/MNIST-Classification.git ("": the repository around this notebook, or the installed package)
REPO_URL = ""

# %%
# Setup: make mnist_lib importable from the repository around this notebook (found by walking up from the
# working directory; no chdir, so relative paths stay relative to it), else as installed, else from REPO_URL.
import importlib.util, subprocess, sys
from pathlib import Path

repo = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "mnist_lib" / "__init__.py").is_file()), None)
if repo is not None:
    sys.path.insert(0, str(repo))
elif importlib.util.find_spec("mnist_lib") is None:
    if not REPO_URL:
        raise ModuleNotFoundError("mnist_lib is neither around this notebook nor installed: set REPO_URL in the "
                                  "parameters cell (or pip install the package) and run again.")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", REPO_URL], check=True)

# %%
# Every parameter goes through the same TrainConfig as the CLI: a bad one stops here with its message.
from IPython.display import Markdown, display
from mnist_lib import diagram, plots
from mnist_lib.models import build_model
from mnist_lib.notebook import check_parameters, describe_run

run = check_parameters(model, recipe, seeds, dataset, runs_dir, images_dir, retrain, architecture="lenet5",
                       epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, momentum=momentum,
                       weight_decay=weight_decay, schedule=schedule, augment=augment, data_dir=data_dir,
                       device=device, limit=limit, val_size=val_size)
display(Markdown(describe_run(run)))

# %% [markdown]
# ## Architecture
#
# The diagram is drawn from the model itself: each arrow is a layer with the operations that
# follow it and its parameter count, each block a tensor with its shape (channels@height×width).
# The two pooling layers (`pool1`, `pool2`: max-pooling 2×2, stride 2) have no trainable parameters.

# %%
# The diagram is computed from the model: shapes from a dummy forward pass, parameters from its modules.
net = build_model(run.config.model, run.config.batchnorm, run.config.dropout)
fig = diagram.architecture_figure(net, run.figure(), title=f"{run.name}: {sum(p.numel() for p in net.parameters()):,} parameters")

# %% [markdown]
# ## Parameter calculation
#
# Weights and biases per layer, computed from the modules (so the arithmetic cannot drift from the code):

# %%
from mnist_lib.notebook import parameter_markdown
display(Markdown(parameter_markdown(net, run.name)))

# %% [markdown]
# ## Training
#
# One run per seed through `mnist_lib.experiments.run_seeds` (the same engine as the CLI): the kept
# model of each run is the epoch with the best **validation** accuracy (training images held out,
# as counted above), so the test set never chooses anything.

# %%
# The data is loaded once and shared by the seeds; a finished run of the same config is reused
# (retrain=True trains again). Each seed's run folder: runs/<dataset>/<recipe>/<variant>/seed<S>/.
data = run.load_data()
metrics = run.run(data)

# %% [markdown]
# ## Results
#
# Loss and accuracy per epoch on the training, validation and test sets (mean over seeds; the band
# is the range over seeds).

# %%
fig = plots.curves_figure([m["history"] for m in metrics], run.figure("_result"), title=f"{run.name} on {run.dataset}",
                          selected_epochs=[m["selected_epoch"] for m in metrics])

# %% [markdown]
# ## Errors
#
# Where the kept models go wrong on the test set:

# %%
# Test-set predictions of each seed's kept model; the confusion matrix is summed over seeds.
from mnist_lib.notebook import per_class_frame, seed_predictions
from mnist_lib.tables import markdown_table

predictions = seed_predictions(run, data)
labels = data.test.labels.cpu()
matrix = sum(plots.confusion_matrix(labels, p) for p in predictions.values())
fig = plots.confusion_figure(matrix, data.class_names, run.figure("_confusion"),
                             title=f"{run.name} on {run.dataset}: test confusion matrix, summed over {len(predictions)} seed(s)")

# %% [markdown]
# Per-class test accuracy (mean ± std over seeds) and the class each one is most often mistaken for:

# %%
per_class = per_class_frame(labels, predictions, data.class_names)
display(Markdown(markdown_table(per_class.drop(columns="mean"))))

# %%
first = run.seeds[0]
fig = plots.misclassified_figure(data.unnormalize(data.test.images), labels, predictions[first], data.class_names,
                                 run.figure("_misclassified"),
                                 title=f"{run.name}, seed {first}: misclassified test images (true→predicted)")

# %% [markdown]
# ## Summary

# %%
from mnist_lib.notebook import model_summary
display(Markdown(model_summary(run, metrics, per_class)))
