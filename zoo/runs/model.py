"""A run's network, rebuilt from its folder: the backbone (cut where the run cut it) with its task's
head, weights from ``checkpoints/final.pt``. What embedding and export load; no trainer involved."""

from __future__ import annotations

from typing import Any

from zoo.errors import ZooError

__all__ = ["Network", "load_model", "head_kind"]


def _network_class() -> type:
    import torch
    from torch import nn

    class Network(nn.Module):
        """Backbone + head: images or tokens in, the head's outputs (class logits, label logits,
        standardised numbers) out."""

        def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = head

        def forward(self, *inputs: torch.Tensor, **named: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(*inputs, **named))

    return Network


def __getattr__(name: str) -> Any:  # Network is built on first use: importing this module imports no torch
    if name == "Network":
        value = _network_class()
        globals()["Network"] = value
        return value
    raise AttributeError(name)


def head_kind(run: Any) -> str:
    """The head a run trained: ``normalised`` (a cross-validated linear fit), ``prototypes`` (fine-tuned
    from an image-text model's zero-shot classifier), ``linear`` or ``mlp``
    (trained by epochs); runs from before the record said so tell it by their validation."""
    recorded = (run.choices.get("head") or {}).get("kind")
    if recorded:
        return str(recorded)
    return "normalised" if run.config.get("validation") == "cv" else str(run.config.get("head", "linear"))


def load_model(run: Any, device: Any = None) -> Any:
    """The fine-tuned network of ``run`` (a :class:`zoo.runs.record.Run`) in eval mode, its
    pulled weights checked against the run's record first."""
    import torch

    from zoo.loading import load
    from zoo.tasks.choosing import get_task
    from zoo.tasks.contract import Targets, TaskContext, is_dense
    from zoo.runs.options import FinetuneOptions

    options = FinetuneOptions.from_dict(run.config)
    run.check_weights()
    path = run.dir / "checkpoints" / "final.pt"
    if not path.is_file():
        raise ZooError(f"{path}: the run has no final model (did it finish?); finish it with "
                       f"`zoo finetune --resume {run.dir}`")
    try:
        final = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or overwritten file: torch raises anything
        raise ZooError(f"{path}: damaged ({type(exc).__name__}: {exc}); delete it and run `zoo finetune "
                       f"--resume {run.dir}` to write it again") from None
    task = get_task(run.task_name)
    if is_dense(task):
        return _dense_network(run, task, options, final, device)
    backbone = load(run.card(), cut=run.cut)
    kind = head_kind(run)
    if kind == "prototypes":  # fine-tuned from the class names' zero-shot classifier (zoo.train.wiseft)
        import numpy as np

        head = task.zero_shot_head(np.zeros((len(run.classes), backbone.feature_dim), np.float32), 1.0, 0.0,
                                   TaskContext(options=options))
    else:
        context = TaskContext(options=options if kind == "normalised" else options.with_(head=kind))
        head = task.head(backbone.feature_dim, Targets(tuple(run.classes), []), context,
                         normalised=kind == "normalised")
    backbone.body.load_state_dict(final["body"], strict=False)
    if run.label_prior:
        from zoo.tasks.heads import LabelAwareHead

        head = LabelAwareHead(head, torch.zeros(len(run.classes), backbone.feature_dim), run.label_prior["weight"],
                              run.label_prior["scale"])
    head.load_state_dict(final["head"])
    model = __getattr__("Network")(backbone, head).eval()
    return model.to(device) if device is not None else model


def _dense_network(run: Any, task: Any, options: Any, final: dict[str, Any], device: Any) -> Any:
    """A dense task's network (:class:`zoo.tasks.contract.DenseTask`): the backbone at the task's
    feature maps, the task's network on it, the trained stages and the new modules loaded."""
    from zoo.loading import load
    from zoo.tasks.contract import Targets, TaskContext

    card = run.card()
    backbone = load(card, features=task.feature_maps(card))
    context = TaskContext(options=options, card=card, targets_record=run.task)
    network = task.network(backbone, Targets(tuple(run.classes), []), context)
    try:
        backbone.body.load_state_dict(final["body"], strict=False)
        network.head.load_state_dict(final["head"])
    except RuntimeError:  # missing or unexpected keys, other shapes
        raise ZooError(f"{run.dir}: its checkpoint does not fit this zoo's {task.name} network (an earlier zoo built "
                       f"another one, e.g. a segmenter decoder with BatchNorm); fine-tune it again") from None
    network.eval()
    return network.to(device) if device is not None else network
