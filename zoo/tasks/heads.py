"""New heads for a backbone's embedding, sized to the classes found."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import ZooError

__all__ = ["make_head", "HEADS", "NormalisedLinear", "LabelAwareHead", "PrototypeHead"]

HEADS = ("linear", "mlp")


class NormalisedLinear(nn.Module):
    """One linear layer on the L2-normalised embedding: the cross-validated logistic regression
    ``zoo finetune`` fits on small data (:mod:`zoo.train.selection`), as a module that trains on,
    exports and runs like any head."""

    def __init__(self, in_dim: int, n_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(nn.functional.normalize(x, dim=1))

    @classmethod
    def fitted(cls, weight: Any, bias: Any) -> NormalisedLinear:
        """The head with a fitted probe's ``(weight, bias)`` (see ``zoo.probing.fit_probe``)."""
        head = cls(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            head.linear.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
            head.linear.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        return head


class LabelAwareHead(nn.Module):
    """A head mixed with the label names' zero-shot classifier (:mod:`zoo.tasks.prior`): its output
    is ``log((1 - w) * softmax(head(x)) + w * softmax(scale * cos(x, prototypes)))``, so a softmax
    over it (the exported probabilities) is the mixture itself. The prototypes and ``w`` are
    buffers: saved with the head, never trained."""

    def __init__(self, head: nn.Module, prototypes: Any, weight: float, scale: float) -> None:
        super().__init__()
        self.head = head
        self.register_buffer("prototypes", torch.as_tensor(prototypes, dtype=torch.float32).clone())
        self.register_buffer("weight", torch.tensor(float(weight)))
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        learned = torch.softmax(self.head(x).float(), dim=1)
        prior = torch.softmax(self.scale * nn.functional.normalize(x.float(), dim=1) @ self.prototypes.T, dim=1)
        return torch.log(((1 - self.weight) * learned + self.weight * prior).clamp_min(1e-12))


class PrototypeHead(nn.Module):
    """Cosine similarity to each class's prototype, times ``scale``, plus ``bias``: an image-text
    model's zero-shot classifier (its prototypes the class names' prompts through the text tower,
    its scale and bias the model's own logit scale and bias), or a few-shot classifier's. The
    prototypes are a trainable layer (``linear.weight``), so the zero-shot classifier is also the
    head fine-tuning starts from; ``scale`` and ``bias`` are buffers, saved with it, never trained."""

    def __init__(self, prototypes: Any, scale: float, bias: float = 0.0) -> None:
        super().__init__()
        prototypes = torch.as_tensor(prototypes, dtype=torch.float32)
        self.linear = nn.Linear(prototypes.shape[1], prototypes.shape[0], bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(prototypes)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("bias", torch.tensor(float(bias)))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.scale * self.linear(nn.functional.normalize(embedding, dim=-1)) + self.bias


def make_head(kind: str, in_dim: int, n_classes: int, *, hidden: int = 512, dropout: float = 0.2,
              normalised: bool = False) -> nn.Module:
    """``linear``: dropout + one layer (the strong default for few labels), or with
    ``normalised`` the cross-validated :class:`NormalisedLinear`; ``mlp``: one hidden layer with
    GELU and dropout, for larger datasets whose classes are not linearly separable."""
    if kind == "linear" and normalised:
        return NormalisedLinear(in_dim, n_classes)
    if kind == "linear":
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, n_classes))
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))
    raise ZooError(f"unknown head {kind!r}: choose one of {', '.join(HEADS)}")
