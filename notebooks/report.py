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
#   title: 'MNIST-Classification: LeNet-5, CustomMLP and LeNet5_Regularized'
# ---

# %% [markdown] tags=["html-only"]
# # MNIST-Classification: LeNet-5, CustomMLP and LeNet5_Regularized
#
# *The course writeup (Artificial Neural Networks and Deep Learning, assignment #2), reproduced and
# extended: every number below is computed from saved runs.*

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE). This notebook reads saved results only; it never trains.
# Paths are relative to the working directory. Run it anywhere: in a checkout of the repository the
# setup cell finds mnist_lib; on Colab set REPO_URL (below) and run the model notebooks first.
runs_dir = "runs"
images_dir = "images"
summary_path = "report/summary.json"
wall_seconds = None  # the pipeline's measured wall time, when it runs this notebook
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
from IPython.display import Markdown, display
from mnist_lib import report
from mnist_lib.experiments import read_summary
from mnist_lib.notebook import check_report_parameters, parameter_markdown, show_figure
from mnist_lib.report import result_paragraph
from mnist_lib.models import build_model

runs_dir, images_dir, summary_path, wall_seconds = check_report_parameters(runs_dir, images_dir, summary_path, wall_seconds)
summary = read_summary(summary_path)

# %% [markdown]
# # Abstract

# %%
display(Markdown(report.abstract(summary)))

# %% [markdown]
# # LeNet-5
#
# LeNet-5 (LeCun et al., 1998) as the course builds it: two 5×5 convolutions (6 and 16 maps), each
# followed by ReLU and 2×2 max-pooling, then fully connected layers 400→120→84→10. The course pads
# the 28×28 image by 2 in `conv1`, where the paper pads it to 32×32. The diagram is computed from the
# model (a dummy forward pass gives every shape).

# %%
show_figure(images_dir / "lenet5.png")

# %% [markdown]
# ## Parameter calculation

# %%
display(Markdown(parameter_markdown(build_model("lenet5"), "LeNet-5")))

# %% [markdown]
# ## Results

# %%
show_figure(images_dir / "lenet5_result.png")
display(Markdown(result_paragraph(summary, "lenet5")))

# %% [markdown]
# # Custom MLP
#
# A multilayer perceptron 784-64-64-64-32-16-10 with ReLU, sized to match LeNet-5's parameter count,
# so the comparison is about architecture rather than capacity.

# %%
show_figure(images_dir / "custom_mlp.png")

# %% [markdown]
# ## Parameter calculation

# %%
display(Markdown(parameter_markdown(build_model("custom_mlp"), "CustomMLP")))

# %% [markdown]
# ## Results

# %%
show_figure(images_dir / "custom_mlp_result.png")
display(Markdown(result_paragraph(summary, "custom_mlp")))

# %% [markdown]
# # LeNet5_Regularized
#
# LeNet-5 with Batch Normalization and Dropout, as the writeup lists them.

# %%
show_figure(images_dir / "lenet5_regularized.png")

# %% [markdown]
# ## Where BatchNorm and Dropout sit, and why
#
# **Batch Normalization** (Ioffe & Szegedy, 2015) follows each convolution, before its ReLU:
# `Conv2d(1, 6, 5, padding=2)` then `BatchNorm2d(6)`, and `Conv2d(6, 16, 5)` then `BatchNorm2d(16)`.
# It standardizes each channel over the mini-batch and rescales it with a learned scale and shift,
# which keeps the gradient scale steady across layers, allows higher learning rates and speeds up
# convergence; the noise of the batch statistics also regularizes a little.
#
# **Dropout** with rate 0.2 (Srivastava et al., 2014) sits after `fc1`, again before `fc2` (the
# writeup lists both, so there are two in a row) and before the classifier `fc3`. Zeroing random
# units in training stops units from co-adapting to the training images. Both are active only in
# training: evaluation uses BatchNorm's running statistics and no Dropout.

# %% [markdown]
# ## Parameter calculation

# %%
display(Markdown(parameter_markdown(build_model("lenet5_regularized"), "LeNet5_Regularized")))

# %% [markdown]
# ## Results

# %%
show_figure(images_dir / "lenet5_regularized_result.png")
display(Markdown(result_paragraph(summary, "lenet5_regularized")))

# %% [markdown]
# # Results

# %%
show_figure(images_dir / "full_result.png")
display(Markdown(report.results_table(summary, "mnist", report.MODEL_NOTEBOOKS)))

# %%
display(Markdown(report.results_discussion(summary)))

# %% [markdown]
# # Conclusion

# %%
display(Markdown(report.conclusion(summary)))

# %% [markdown]
# # Beyond the writeup
#
# What the course writeup did not have: several seeds per model with mean ± std, the kept epoch
# chosen on a validation split, a regularization ablation, explicit targets, a second dataset and
# the time it all took.

# %% [markdown]
# ## Seeds and validation-based selection

# %%
display(Markdown(report.method_paragraph(summary)))

# %% [markdown]
# ## Regularization ablation

# %%
show_figure(images_dir / "ablation.png")
display(Markdown(report.markdown_table(report.ablation_frame(summary, report.ablation_variants(summary),
                                                             report.recipes_run(summary)))))
display(Markdown(report.ablation_sentences(summary, report.ablation_variants(summary), report.recipes_run(summary))))

# %% [markdown]
# ## Targets

# %%
display(Markdown(report.markdown_table(report.targets_frame(summary))))

# %% [markdown]
# ## A longer budget

# %%
from mnist_lib.experiments import read_summary
extended_path = summary_path.with_name("summary_extended.json")  # written by `report --extended`
display(Markdown(report.extended_section(read_summary(extended_path) if extended_path.is_file() else None, summary)))

# %% [markdown]
# ## Where LeNet-5 goes wrong

# %%
show_figure(images_dir / "lenet5_confusion.png")
show_figure(images_dir / "lenet5_misclassified.png")

# %% [markdown]
# ## Fashion-MNIST

# %%
if "fashion-mnist" in summary:
    display(Markdown(report.results_table(summary, "fashion-mnist")))
    show_figure(images_dir / "datasets.png")
display(Markdown(report.carry_over_sentence(summary)))

# %% [markdown]
# ## Speed and wall time

# %%
timing = report.timing_frame(summary)
display(Markdown(report.markdown_table(timing[timing.recipe == "tuned"].drop(columns=["seconds", "recipe"]))))
display(Markdown(report.time_sentence(summary, wall_seconds)))

# %% [markdown]
# # References
#
# - Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to document recognition. *Proc. IEEE* 86(11), 1998.
# - S. Ioffe, C. Szegedy. Batch Normalization: accelerating deep network training by reducing internal covariate shift. ICML 2015.
# - N. Srivastava et al. Dropout: a simple way to prevent neural networks from overfitting. *JMLR* 15, 2014.
# - L. N. Smith, N. Topin. Super-convergence: very fast training of neural networks using large learning rates. 2019.
# - H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a novel image dataset for benchmarking machine learning algorithms. 2017.
