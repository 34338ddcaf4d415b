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
#   title: LeNet5_Regularized on MNIST
# ---

# %% [markdown]
# # LeNet5_Regularized on MNIST
#
# LeNet-5 with the writeup's two regularizers: **Batch Normalization** (Ioffe & Szegedy, 2015) after
# each convolution, and **Dropout** (Srivastava et al., 2014; rate 0.2) around the fully connected
# layers. The writeup claims they stabilize training, cut the epochs it needs, allow higher learning
# rates and improve generalization; the report tests each claim. `python -m mnist_lib report`
# executes this notebook with papermill; the parameters and how to run it on Colab are in the README.

# %% tags=["parameters"]
model = "lenet5_regularized"  # this architecture or one of its variants (mnist_lib.registry.VARIANTS)
recipe, seeds, dataset = "tuned", [0, 1, 2], "mnist"  # recipe: "tuned" or "course"; dataset: or "fashion-mnist"
epochs = batch_size = lr = optimizer = momentum = weight_decay = schedule = augment = None  # None: the recipe's
data_dir, device, limit, val_size = None, "auto", None, None  # data_dir None: $MNIST_DATA_DIR, else ./data
runs_dir, images_dir, retrain = "runs", "images", False  # retrain: even where a finished run of this config exists
REPO_URL = ""  # Colab: a pip-installable URL of your copy of the repository (see the README)

# %%
# Setup: mnist_lib from the repository around this notebook, else as installed, else from REPO_URL.
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
from mnist_lib.notebook import check_parameters, config_fields

run = check_parameters(model, recipe, seeds, dataset, runs_dir, images_dir, retrain, architecture="lenet5_regularized",
                       **config_fields(globals()))
run.describe()

# %% [markdown]
# ## Architecture: where BatchNorm and Dropout sit
#
# - `conv1`: `Conv2d(1, 6, 5, padding=2)` then `BatchNorm2d(6)`, before the ReLU and pooling;
#   `conv2`: `Conv2d(6, 16, 5)` then `BatchNorm2d(16)`. BatchNorm standardizes each channel over
#   the mini-batch, then rescales it with a learned scale and shift (2 parameters per channel).
# - Dropout zeroes each unit with probability 0.2 in training (and scales the rest by 1/0.8):
#   after `fc1` (and, as the writeup lists, again before `fc2`: two in a row), and before `fc3`.
#
# Both act only in training: in evaluation BatchNorm uses its running statistics and Dropout is off.

# %%
net = run.show_architecture()

# %% [markdown]
# ## Training
#
# The same recipe and seeds as LeNet-5, so the two differ only by the regularizers. The kept epoch
# is chosen on validation accuracy; Dropout is off when it is measured.

# %%
metrics = run.run()

# %% [markdown]
# ## Learning curves
#
# With Dropout on during training, the running training accuracy is measured on a thinned network:
# it sits below the validation accuracy, which is measured with every unit.

# %%
run.show_curves(metrics)

# %% [markdown]
# ## What the first layer learned
#
# The same picture as in the LeNet-5 notebook, here after BatchNorm: each map is standardized, so
# the maps share one scale whatever the filter's own gain.

# %%
run.show_conv1(metrics)

# %% [markdown]
# ## Where LeNet5_Regularized goes wrong
#
# The confusion matrix summed over seeds, per-class accuracy, and the first seed's misclassified digits.

# %%
per_class = run.show_errors(metrics)

# %% [markdown]
# ## In numbers

# %%
run.show_summary(metrics, per_class)
