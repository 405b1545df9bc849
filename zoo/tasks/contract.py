"""What a task is to zoo: the typed contract a task plugin fulfils (``register_tasks``).

A run learns to output one kind of thing: a class, a set of labels, numbers (later boxes and
masks). Everything that differs between those kinds is asked of the run's :class:`Task`; the
pipeline (data, the frozen pass, the one epoch loop, the report, export) never branches on a
task's name. The built-in tasks (:mod:`zoo.tasks.classification`, :mod:`zoo.tasks.multilabel`,
:mod:`zoo.tasks.regression`) are registered through the same hook as a third party's.

Stdlib only at import: tasks are registered whenever a plugin host starts (``zoo list``
included); numpy, torch and scikit-learn load inside their methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["Task", "DenseTask", "Targets", "Estimate", "Score", "Output", "TaskContext", "is_dense"]


@dataclass(frozen=True)
class Targets:
    """What a task reads from a dataset: one target per example, in example order.

    ``values``: a numpy array the task's heads, losses and metrics take (class indices ``(n,)``,
    a 0/1 label matrix ``(n, labels)``, or numbers ``(n, targets)`` in the task's training units;
    a dense task's: an object array of one JSON-like record per example, its boxes or its mask).
    ``strata``: one integer per example for stratified folds and splits, or None (plain shuffles).
    ``record``: what the run folder keeps about them (a regression's means and scales)."""

    names: tuple[str, ...]
    values: Any
    strata: Any = None
    record: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.values))

    def take(self, index: Any) -> Targets:
        """The targets at ``index`` (an array of positions), same names."""
        import numpy as np

        index = np.asarray(index, dtype=np.int64)
        return Targets(self.names, self.values[index], None if self.strata is None else self.strata[index],
                       self.record)

    def digest(self) -> bytes:
        """The values' bytes for the data's fingerprint (a resumed run checks it): the array's own
        bytes, or, for an object array of per-example records, their JSON (never addresses)."""
        import json

        import numpy as np

        values = np.asarray(self.values)
        if values.dtype != object:
            return np.ascontiguousarray(values).tobytes()
        return json.dumps([_plain(v) for v in values.tolist()], sort_keys=True).encode()


def _plain(value: Any) -> Any:
    """A record's numbers as JSON takes them (numpy arrays and scalars as lists and numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


@dataclass(frozen=True)
class Estimate:
    """A cross-validated frozen head on one set of features: the task's metrics over the held-out
    folds (``scores``), the number candidates are ranked by (``rank``: lower is better, e.g. a
    log-loss or a mean squared error) and the parameters a fit on all examples uses (``params``:
    a regularisation strength, thresholds)."""

    scores: Mapping[str, Any]
    rank: float
    params: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**dict(self.scores), "rank": self.rank, "params": dict(self.params)}


@dataclass(frozen=True)
class Score:
    """One point of a trajectory judged on held-out data: ``loss`` ranks epochs (lower is better,
    smooth on small sets), ``metric`` is the task's selection metric (its direction in
    :attr:`Task.higher_is_better`)."""

    loss: float
    metric: float

    def beats(self, other: Score | None) -> bool:
        return other is None or self.loss < other.loss - 1e-6

    def to_dict(self) -> dict[str, float]:
        return {"loss": self.loss, "metric": self.metric}


@dataclass(frozen=True)
class Output:
    """How a trained network's raw output becomes the task's answer, in the exported graph and in
    the torch-free runtime: ``activation`` in the graph (``softmax``, ``sigmoid`` or ``none``), and
    the metadata ``kind`` the runtime reads it by, with the keys it needs (``thresholds``,
    ``targets``)."""

    kind: str
    activation: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskContext:
    """What a task's methods may need beyond features and targets: the run's options (a
    :class:`zoo.runs.options.FinetuneOptions`), the backbone's card (its input spec decides a
    front end's baseline), where the data came from (for messages), the training targets' class
    weights (classification, when the run balances them) and where one-line notes go."""

    options: Any
    card: Any = None
    where: str = "the data"
    class_weights: tuple[float, ...] | None = None
    targets_record: Mapping[str, Any] = field(default_factory=dict)  # the training targets' record (units)
    log: Any = None

    @property
    def class_weight(self) -> str | None:
        """scikit-learn's ``class_weight`` for the frozen fits: ``balanced`` when the run balances."""
        return "balanced" if self.class_weights else None

    @property
    def spec(self) -> Any:
        return self.card.input if self.card is not None else None


@runtime_checkable
class Task(Protocol):
    """A kind of output a run learns. Methods take numpy arrays (features, targets' values) and
    return plain data or torch modules; see each built-in task for the reference behaviour."""

    name: str  # "classification", "multi-label", "regression", ...
    description: str
    metrics: Mapping[str, bool]  # what --metric takes, each with whether higher is better; the first is the default
    by_class: bool  # examples are split and folded by class (stratified, per-class counts)
    chooses_cut: bool  # the frozen head's cut is chosen among the card's candidates (else the card's embedding)
    epochs: bool  # it can train by epochs (heads by SGD, unfrozen stages); False: frozen heads only
    rank_name: str  # what cross-validated candidates are ranked by (lower is better): "log-loss", "mse"

    def check(self, options: Any) -> None:
        """Options that do not apply to this task: one line each (an InputError or ZooError)."""

    def claims(self, dataset: Any, options: Any) -> bool:
        """Whether ``dataset`` (as read by its format) asks for this task when none was named."""

    def targets(self, dataset: Any, options: Any, like: Targets | None = None) -> Targets:
        """The dataset's targets, checked: an unusable row is an :class:`zoo.errors.InputError` naming
        it. ``like``: the training set's targets, whose names (and units) held-out sets must share."""

    def class_weights(self, targets: Targets, options: Any) -> tuple[float, ...] | None:
        """Loss weights per output for these training targets (balanced classes), or None."""

    def head(self, in_dim: int, targets: Targets, context: TaskContext, *, normalised: bool) -> Any:
        """A new head (``torch.nn.Module``) on ``in_dim`` features for these targets; ``normalised``:
        the linear head on L2-normalised features that cross-validated fits load into."""

    def loss(self, targets: Targets, context: TaskContext) -> Any:
        """The training loss: a callable ``(outputs, values) -> summed loss`` with ``weight(values)``
        (what a batch's mean divides by), as :mod:`zoo.train.learner` steps it."""

    def judge(self, outputs: Any, values: Any, context: TaskContext) -> Score:
        """Held-out outputs (a float tensor) against their targets: the loss and the metric."""

    def cross_validate(self, x: Any, targets: Targets, context: TaskContext, *, seed: int) -> Estimate:
        """The frozen head's nested cross-validated estimate on features ``x``."""

    def fit(self, x: Any, targets: Targets, params: Mapping[str, Any], context: TaskContext) -> Any:
        """The frozen head fitted on all of ``x`` with the chosen ``params``: a loadable state
        for :meth:`head` (``normalised=True``) as a ``torch.nn.Module``."""

    def evaluate(self, outputs: Any, targets: Targets, choices: Mapping[str, Any]) -> dict[str, Any]:
        """The report's metrics of held-out outputs (JSON-ready; scikit-learn's where it has them);
        ``choices``: what the run chose (a multi-label run's thresholds)."""

    def baseline(self, modality: str, labelled: Any, targets: Targets, held_out: Mapping[str, tuple[Any, Targets]],
                 context: TaskContext, *, seed: int) -> dict[str, Any] | None:
        """The honest baseline without transfer, cross-validated like the head."""

    def compare(self, transfer: Mapping[str, Any], base: dict[str, Any] | None, context: TaskContext) -> str:
        """The baseline line: did transfer beat ``base``, on which estimate, by how much."""

    def lines(self, metrics: Mapping[str, Any]) -> tuple[str, list[str]]:
        """The run's one-line summary and the report's lines, from ``report/metrics.json``."""

    def plots(self, metrics: Mapping[str, Any], names: Sequence[str], folder: Path) -> list[Path]:
        """The task's pictures of held-out results (confusion matrices, scatter plots)."""

    def output(self, targets_record: Mapping[str, Any], choices: Mapping[str, Any]) -> Output:
        """What the exported graph ends in and the runtime repeats."""


@runtime_checkable
class DenseTask(Protocol):
    """A task whose output is a map over the image (boxes, masks) rather than a vector: what it
    gives besides :class:`Task`'s targets, judgement, evaluation, baseline, report and output
    (it has no ``head``, ``cross_validate`` or ``fit``: nothing pooled is cached, so the plan
    trains its network by epochs on a validation split).

    - its network reads the backbone's feature maps at their strides (the card's ``features``,
      which :meth:`feature_maps` picks) and is built whole by :meth:`network`: a module with the
      given backbone as ``backbone`` and every new module under ``head`` (what a checkpoint holds
      beside the trained stages); called ``(images, targets)`` in training mode it returns its
      losses (a dict of tensors: torchvision's detectors compute theirs inside), in eval mode
      ``(images)`` one dict of tensors per image (its answer); with ``features=`` (the backbone's
      maps of those images, computed already: phase 0 keeps them as a head keeps embeddings) it
      skips the backbone;
    - its inputs are whole images at one size (:meth:`input_spec`: the card's input, squashed),
      the spec the run, the export and the torch-free runtime read them by;
    - its examples are made by :meth:`sampler`: a picklable callable ``(item, value, seed,
      augment) -> (CHW float tensor, per-image target dict of tensors)`` that moves boxes or masks
      with the image (``seed`` < 0 or ``augment == "none"``: no augmentation), with a ``collate``
      attribute that batches them as ``(NCHW tensor, list of targets)``;
    - its ``loss`` is a callable ``(losses, targets) -> loss summed over the images`` with
      ``weight_of``, like every task's;
    - its exported graph is :meth:`graph` of the network (raw outputs the runtime post-processes,
      as :meth:`Task.output`'s metadata says).
    """

    name: str
    learning: Mapping[str, Any]  # its own defaults (unfreeze, unfreeze_epochs, backbone_lr, batch_size)

    def feature_maps(self, card: Any) -> tuple[str, ...]:
        """The card's features the network reads, input side first."""

    def input_spec(self, card: Any) -> Any:
        """The :class:`zoo.card.InputSpec` its images are read at (the whole image, one size)."""

    def network(self, backbone: Any, targets: Targets, context: TaskContext) -> Any:
        """The whole network on ``backbone`` (loaded with :meth:`feature_maps`), for these targets."""

    def sampler(self, spec: Any, context: TaskContext) -> Any:
        """The loader's example maker for images read at ``spec`` (see the class)."""

    def graph(self, network: Any, targets_record: Mapping[str, Any]) -> Any:
        """The module to export: images in, the raw outputs :meth:`Task.output` describes out."""


def is_dense(task: Any) -> bool:
    """Whether ``task`` builds its own network on the backbone's feature maps (:class:`DenseTask`)."""
    return callable(getattr(task, "network", None))
