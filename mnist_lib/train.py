"""The training engine, shared by the CLI and the notebooks: one `TrainConfig` in, a run folder
(`metrics.json`, `model.pt`, `checkpoint.pt`) and the metrics dict out."""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mnist_lib.config import TrainConfig
from mnist_lib.data import DataSplits, Split, augment_batch, batches, load_config_data, shift_batch
from mnist_lib.errors import Diverged, MnistLibError
from mnist_lib.files import ensure_writable_dir, write_json, write_torch
from mnist_lib.models import build_model, count_parameters

METRICS = "metrics.json"
MODEL = "model.pt"
CHECKPOINT = "checkpoint.pt"
NAN_CHECK_EVERY = 50  # steps between divergence checks: each check is one host sync
CPU_EVAL_CHUNK = 500  # images per CPU evaluation pass: 2,000 cost ~80 MiB (the memory peak) and ran slower


def select_device(name: str = "auto") -> torch.device:
    """auto: CUDA, then Apple MPS, then CPU. An explicit device that is absent is an error."""
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if name == "auto":
        return torch.device(next(kind for kind, present in available.items() if present))
    if not available.get(name.split(":")[0], True):
        raise MnistLibError(f"device {name!r} is not available here: use --device auto or cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo), else what platform knows."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: torch.device, config: TrainConfig) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "torchvision": importlib.metadata.version("torchvision"),  # without importing it (memory)
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "seed": config.seed,
    }


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, batch_size: int = 2000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in percent) over a split, in large batches."""
    model.eval()
    loss_sum = torch.zeros((), device=split.device)
    correct = torch.zeros((), dtype=torch.long, device=split.device)
    if split.device.type == "cpu":
        batch_size = min(batch_size, CPU_EVAL_CHUNK)
    for x, y in batches(split, batch_size):
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    n = max(len(split), 1)
    return loss_sum.item() / n, 100.0 * correct.item() / n


@torch.inference_mode()
def predict(model: nn.Module, split: Split, batch_size: int = 2000) -> torch.Tensor:
    """Predicted class per image (CPU int64), for confusion matrices and galleries."""
    model.eval()
    return torch.cat([model(x).argmax(1).cpu() for x, _ in batches(split, batch_size)])


def apply_memory_format(model: nn.Module, config: TrainConfig, device: torch.device) -> nn.Module:
    """The model in ``config.memory_format``. "auto" picks channels_last (NHWC) on CPU without BatchNorm2d:
    it runs LeNet-5's CPU convolutions and pooling 1.1-1.5x faster, but BatchNorm2d's CPU kernels 1.5-3x
    slower (mixing formats gained nothing), and not on CUDA."""
    auto = device.type == "cpu" and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if config.memory_format == "channels_last" or (config.memory_format == "auto" and auto):
        return model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # fused: one kernel updates every parameter, instead of a few small ops per tensor
    # (10-40% faster steps on CPU for these small models); CPU and CUDA have the kernels.
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov, weight_decay=config.weight_decay, fused=fused)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch, the engine's (and the benchmark's floor's): (logits, loss)."""
    logits = model(x)
    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip is not None:
        # foreach: one fused norm over all gradients; no host sync (the norm stays a tensor)
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
    optimizer.step()
    return logits, loss


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """Stepped once per batch. onecycle: warm up to lr, then anneal (Smith & Topin, 2019)."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total,
                                                   pct_start=0.25, div_factor=10.0, final_div_factor=100.0)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _torch_load(path: str | Path, what: str, if_missing: str) -> Any:
    """A torch file, loaded safely (tensors and plain data only); a missing or unreadable one is a one-line error."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MnistLibError(f"{path} does not exist: {if_missing}") from None
    except Exception as exc:
        raise MnistLibError(f"{path} is not a readable {what} ({type(exc).__name__}): "
                            f"delete it and train again") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint (`_Run.state`)."""
    checkpoint = _torch_load(path, "checkpoint", "nothing to resume (start the run without --resume)")
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint or "config" not in checkpoint:
        raise MnistLibError(f"{path} is not an mnist_lib training checkpoint")
    return checkpoint


def load_model(path: str | Path, config: TrainConfig) -> nn.Module:
    """A model of ``config``'s architecture with the weights of a saved `model.pt` (a state_dict)."""
    model = build_model(config.model, config.batchnorm, config.dropout)
    state = _torch_load(path, "model file", "train the model first")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise MnistLibError(f"{path} does not hold weights of model {config.model!r}: "
                            f"{str(exc).splitlines()[0][:160]}") from None
    return model


def check_resumable(checkpoint: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """Raise unless ``checkpoint`` continues the run ``config`` describes: the same training (by
    `TrainConfig.first_difference`, as reuse) for any number of epochs, unless the schedule depends on it."""
    k = config.first_difference(checkpoint["config"], ignore=("epochs",))
    if k is not None:
        raise MnistLibError(f"{path} was saved with {k}={checkpoint['config'].get(k)!r}, not {getattr(config, k)!r}: "
                            f"resume with the same settings, or train into a new --out")
    saved_epochs = checkpoint["config"].get("epochs")
    if saved_epochs != config.epochs and config.schedule != "none":
        raise MnistLibError(f"{path} was saved by a {saved_epochs}-epoch run, and the {config.schedule} schedule "
                            f"depends on the number of epochs: resume with epochs={saved_epochs}, "
                            f"or train into a new --out")
    if checkpoint["epoch"] > config.epochs:
        raise MnistLibError(f"{path} is already at epoch {checkpoint['epoch']}, past epochs={config.epochs}")


@dataclass
class TrainResult:
    metrics: dict[str, Any]  # exactly what metrics.json holds
    model: nn.Module  # the kept model (best validation epoch), in eval mode, on the device
    data: DataSplits  # the tensors it was trained and evaluated on, on the device


@dataclass
class _Run:
    """The training state between two epochs (what a checkpoint saves and restores), and its updates."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    shuffle: torch.Generator  # draws the data order
    augment: torch.Generator  # draws the augmentation
    steps: int  # per epoch
    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch: int = 0
    epoch: int = 0  # the last finished epoch

    @classmethod
    def start(cls, config: TrainConfig, data: DataSplits, device: torch.device) -> "_Run":
        """A fresh seeded model, its optimizer and schedule, and the data order's and augmentation's generators."""
        seed_everything(config.seed)
        model = build_model(config.model, config.batchnorm, config.dropout).to(device)
        model = apply_memory_format(model, config, device)
        optimizer = make_optimizer(model, config)
        steps = math.ceil(len(data.train) / config.batch_size)
        generators = (torch.Generator().manual_seed(config.seed), torch.Generator().manual_seed(config.seed + 1))
        return cls(model, optimizer, make_scheduler(optimizer, config, steps), *generators, steps)

    def state(self, config: TrainConfig) -> dict[str, Any]:
        # Every generator the run draws from, so a resumed run continues exactly as an unbroken one.
        rng = {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state(), "augment": self.augment.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"config": config.to_dict(), "epoch": self.epoch, "model_state": self.model.state_dict(),
                "optimizer_state": self.optimizer.state_dict(), "scheduler_state": self.scheduler.state_dict(),
                "rng": rng, "history": self.history, "best_state": self.best_state, "best_epoch": self.best_epoch}

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        self.scheduler.load_state_dict(checkpoint["scheduler_state"])
        rng = checkpoint["rng"]
        torch.set_rng_state(rng["torch"])
        self.shuffle.set_state(rng["shuffle"])
        self.augment.set_state(rng["augment"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.history, self.epoch = checkpoint["history"], checkpoint["epoch"]
        self.best_state, self.best_epoch = checkpoint["best_state"], checkpoint["best_epoch"]

    def check_finite(self, losses: torch.Tensor, lr: float) -> None:
        """Raise `Diverged` at the first of this epoch's step losses so far that is not finite."""
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            step = int(bad[0])
            raise Diverged(f"training diverged: the loss became {losses[step].item()} at epoch {self.epoch + 1}, "
                           f"step {step + 1}; lower lr (now {lr}) and start again", self.history)

    def keep_if_best(self, entry: dict[str, Any]) -> None:
        """Keep the finished epoch's weights if it is the best so far (`selection_key`)."""
        if not self.best_epoch or self.selection_key(entry) > self.selection_key(self.history[self.best_epoch - 1]):
            self.best_epoch = entry["epoch"]
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    @staticmethod
    def selection_key(entry: dict[str, Any]) -> tuple:
        """What the kept epoch is chosen by: validation accuracy, then lower validation loss; the last
        epoch without a validation split. Test numbers never choose."""
        return (entry["val_acc"], -entry["val_loss"]) if entry["val_acc"] is not None else (entry["epoch"], 0)


def _open_out(out_dir: str | Path | None, config: TrainConfig, resume: bool, overwrite: bool
              ) -> tuple[Path | None, dict[str, Any] | None]:
    """(run folder, checkpoint to resume): refuses a finished run unless told, and a foreign checkpoint."""
    if out_dir is None:
        if resume:
            raise MnistLibError("resume needs an output folder (--out) holding checkpoint.pt")
        return None, None
    out = Path(out_dir)
    if (out / METRICS).exists() and not (resume or overwrite):
        raise MnistLibError(f"{out} already holds a finished run: choose another --out, "
                            f"or pass --overwrite (or --resume to extend it)")
    ensure_writable_dir(out)
    checkpoint = load_checkpoint(out / CHECKPOINT) if resume else None
    if checkpoint is not None:
        check_resumable(checkpoint, config, out / CHECKPOINT)
    return out, checkpoint


def _train_epoch(run: _Run, config: TrainConfig, data: DataSplits, bar) -> dict[str, Any]:
    """One pass over the shuffled training images: loss, running accuracy and seconds."""
    start = time.perf_counter()
    lr = run.optimizer.param_groups[0]["lr"]
    device = data.train.device
    run.model.train()
    losses = torch.zeros(run.steps, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    background = -data.mean / data.std  # a 0 pixel after normalization
    for step, (x, y) in enumerate(batches(data.train, config.batch_size, run.shuffle)):
        if config.augment and config.augment_mode == "shift":
            x = shift_batch(x, round(config.augment_shift), background, run.augment)
        elif config.augment:
            x = augment_batch(x, config.augment_degrees, config.augment_shift, background, run.augment)
        logits, loss = train_step(run.model, run.optimizer, x, y, config)
        run.scheduler.step()
        losses[step] = loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        if (step + 1) % NAN_CHECK_EVERY == 0 or step + 1 == run.steps:
            run.check_finite(losses[: step + 1], config.lr)
        bar.update(1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"epoch": run.epoch + 1, "lr": lr, "train_loss": losses.sum().item() / len(data.train),
            "train_acc": 100.0 * correct.item() / len(data.train), "train_seconds": time.perf_counter() - start}


def _evaluate_epoch(run: _Run, config: TrainConfig, data: DataSplits, entry: dict[str, Any]) -> None:
    """Validation and test numbers of the epoch's model into ``entry``; a non-finite loss
    (the last step's update can break the weights after its loss was checked) is divergence."""
    val_loss, val_acc = evaluate(run.model, data.val, config.eval_batch_size) if len(data.val) else (None, None)
    test_loss, test_acc = evaluate(run.model, data.test, config.eval_batch_size)
    bad = next((loss for loss in (test_loss, val_loss) if loss is not None and not math.isfinite(loss)), None)
    if bad is not None:
        raise Diverged(f"training diverged: the evaluation loss became {bad} after epoch {entry['epoch']}, "
                       f"step {run.steps}; lower lr (now {config.lr}) and start again", run.history)
    entry.update(val_loss=val_loss, val_acc=val_acc, test_loss=test_loss, test_acc=test_acc)


def _final_metrics(run: _Run, config: TrainConfig, data: DataSplits, device: torch.device) -> dict[str, Any]:
    """metrics.json of the kept model (``run.model`` holds its weights)."""
    # The kept model on the clean training images (no augmentation, Dropout off): with the
    # test accuracy this is the train-test gap, which says whether there was overfitting at all.
    train_eval_loss, train_eval_acc = evaluate(run.model, data.train, config.eval_batch_size)
    return {
        "config": config.to_dict(),
        "environment": environment(device, config),
        "params": count_parameters(run.model),
        "history": run.history,
        "selected_epoch": run.best_epoch,
        "selection": "best validation accuracy" if len(data.val) else "last epoch (no validation split)",
        "final": {**run.history[run.best_epoch - 1], "train_eval_loss": train_eval_loss,
                  "train_eval_acc": train_eval_acc},
        "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "finished_at": round(time.time(), 1),  # Unix time: the study's sittings and wall time come from it
    }


def train(config: TrainConfig, out_dir: str | Path | None = None, data: DataSplits | None = None,
          resume: bool = False, overwrite: bool = False,
          record: Callable[[nn.Module, DataSplits], dict[str, Any]] | None = None) -> TrainResult:
    """Train ``config.model`` (and write the run folder to ``out_dir``). The kept model is the best
    validation epoch (the last one without a validation split); test numbers never choose. ``record``
    adds metrics.json's "analysis" from the kept model. A non-finite loss raises `Diverged`."""
    config.validate()
    out, checkpoint = _open_out(out_dir, config, resume, overwrite)
    device = select_device(config.device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    data = (data if data is not None else load_config_data(config)).to(device)
    run = _Run.start(config, data, device)
    if checkpoint is not None:
        run.restore(checkpoint)
    bar = tqdm(total=(config.epochs - run.epoch) * run.steps, disable=not config.progress,
               desc=f"{config.model} seed {config.seed}", unit="step", dynamic_ncols=True)
    while run.epoch < config.epochs:
        start = time.perf_counter()
        entry = _train_epoch(run, config, data, bar)
        _evaluate_epoch(run, config, data, entry)
        entry["seconds"] = time.perf_counter() - start
        run.history.append(entry)
        run.epoch += 1
        run.keep_if_best(entry)
        bar.set_postfix(epoch=run.epoch, val_acc=f"{entry['val_acc'] or 0:.2f}", test_acc=f"{entry['test_acc']:.2f}")
        if out is not None:
            write_torch(out / CHECKPOINT, run.state(config))
    bar.close()
    run.model.load_state_dict(run.best_state)
    metrics = _final_metrics(run, config, data, device)
    if record is not None:
        metrics["analysis"] = record(run.model, data)
    if out is not None:
        write_torch(out / MODEL, run.best_state)
        write_json(out / METRICS, metrics)  # last: its presence marks a finished run
    run.model.eval()
    return TrainResult(metrics, run.model, data)
