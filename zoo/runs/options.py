"""What a fine-tuning run is asked to do: its options in groups, each checked where it is defined.

``zoo.finetune(model, data, **options)`` and ``zoo finetune --flags`` take the options by their
flat names (``per_class``, ``unfreeze``, ``head_lr``); :meth:`FinetuneOptions.from_flat` sorts them
into their groups:

- :class:`DataOptions`: what to read and how to hold data out;
- :class:`PlanOptions`: the task, how the run is judged, where to cut, the recipe, the metric;
- :class:`HeadOptions`: the new head and its loss;
- :class:`UnfreezeOptions`: gradual unfreezing and contrastive training of the backbone;
- :class:`EngineOptions`: where and how fast to compute (device, loaders, the frozen pass);

``auto`` values are decided once, from the data, by :func:`zoo.train.plan.make_plan`, which also
says why; the run folder's ``config.json`` holds the options (flat, after the plan decided them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from zoo.errors import ZooError

__all__ = ["FinetuneOptions", "DataOptions", "PlanOptions", "HeadOptions", "UnfreezeOptions", "EngineOptions",
           "AUGMENTATIONS", "RECIPES", "LEARNING", "BATCH_SIZE", "TASKS", "flat_defaults"]

#: ``gradual``: a head on the frozen embeddings, then the top stages unfrozen one by one;
#: ``contrastive``: the whole text encoder trained on pairs of the labelled texts first, then the
#: head (zoo.train.contrastive); ``wise-ft``: an image-text model's image tower fine-tuned from
#: the class names' zero-shot classifier, then the zero-shot and fine-tuned weights mixed
#: (zoo.train.wiseft); ``auto``: chosen from the data's size and modality by the plan, as
#: measured in bench/text_fewshot.py (wise-ft for image-text models: not measured, see wiseft).
RECIPES = ("auto", "gradual", "contrastive", "wise-ft")

#: Image augmentation policies for unfrozen phases, all torchvision.transforms.v2 and built by
#: zoo.batches.augmentation (no flips: digits and text in images are not mirror-symmetric):
#: ``light`` a random crop of 70-100% of the area with a small aspect change plus a mild
#: brightness/contrast jitter (the default); ``trivialaugment`` and ``randaugment`` torchvision's
#: policies; ``none``.
AUGMENTATIONS = ("light", "trivialaugment", "randaugment", "none")

#: ``--head``: ``linear`` (the cross-validated fit on frozen features, or one layer trained by
#: epochs) or ``mlp`` (a hidden layer, trained by epochs); zoo.tasks.heads.make_head builds them.
HEADS = ("linear", "mlp")

#: ``--task``: ``auto`` infers it from the data (zoo.tasks.choosing), or a registered task's name.
TASKS = ("auto", "classification", "multi-label", "regression")

#: What ``unfreeze_epochs`` and ``backbone_lr`` are when left out (None). A front end may choose its
#: own (``learning``, with ``unfreeze`` for "auto" too): the log-mel one unfreezes every stage at
#: 1e-3 for 10 epochs each, because spectrograms are far from ImageNet's photographs: on spoken
#: digits (10 clips per class, bench/audio_digits.py) the head alone scored 0.945 on unseen voices
#: against the MFCC baseline's 0.960; the top 2 stages (at 1e-4 or 1e-3) or every stage at 3e-4 gained
#: nothing on the folds (not kept), every stage at 1e-3 for 10 epochs each reached 0.970 (seed 0).
LEARNING: dict[str, Any] = {"unfreeze_epochs": 6, "backbone_lr": 1e-4}
#: Pictures or texts per training step unless ``--batch-size`` or the task's ``learning`` says
#: otherwise (a dense task's: bench/detect_pasted.py measured detectors learning most per second
#: of 2 CPU cores from batches of 4).
BATCH_SIZE = 32


def _positive(name: str, value: Any) -> None:
    if value is not None and value <= 0:
        raise ZooError(f"--{name.replace('_', '-')} must be positive, got {value}")


@dataclass(frozen=True)
class DataOptions:
    data: str
    val: str | None = None
    test: str | None = None
    # None: 0.2 when a validation split is used (giving it, or --val, asks for one)
    val_split: float | None = None
    per_class: int | None = None
    skip_bad: bool = False
    # the manifest column(s) to learn ("age", "price,rating"); None: the label column
    target: str | None = None
    # data of another modality (sounds for an image backbone): the front end's settings
    # ({"clip_seconds": 2}); the run records every parameter, resolved ({"name", "modality", "params"})
    front_end: dict | None = None

    def __post_init__(self) -> None:
        if self.val_split is not None and not 0.0 < self.val_split < 1.0:
            raise ZooError(f"--val-split must be between 0 and 1, got {self.val_split}")
        if self.per_class is not None and self.per_class < 1:
            raise ZooError(f"--per-class must be at least 1, got {self.per_class}")
        if self.target is not None and not str(self.target).strip(", "):
            raise ZooError("--target names a column (or several, 'price,rating'), got nothing")

    @property
    def split_fraction(self) -> float:
        """The validation fraction of a split (the default when none was asked for)."""
        return 0.2 if self.val_split is None else self.val_split


@dataclass(frozen=True)
class PlanOptions:
    # see TASKS
    task: str = "auto"
    # "auto": "cv" up to zoo.train.plan.CV_PER_CLASS labelled examples per class (cut and head chosen
    # by cross-validation on all of them, then fitted on all); above, the frozen head is still
    # cross-validated and a validation split judges what needs epochs; "cv"; "split"
    validation: str = "auto"
    # where the embedding is taken: "auto" (chosen by cross-validation among the card's embedding,
    # its features and all of them joined), "all", a feature name, or names joined by "+"
    cut: str = "auto"
    # what the regularisation, the choice to keep unfrozen layers and the baseline line judge by:
    # "auto" is the task's first metric (accuracy; rmse for a regression)
    metric: str = "auto"
    # "auto": a cross-validated text run with at most zoo.tasks.prior.PRIOR_PER_CLASS labelled texts
    # per class (an image-text model's at any size) mixes its head with the class names' zero-shot
    # classifier, the mixture's weight chosen on folds; "always": at any size; "none": the head alone
    label_prior: str = "auto"
    # the class names to embed for the prior (as `zoo fewshot --labels`: names, a file of names or
    # `name: description` lines); None: the data's label names. Given, the prior is used at any size
    labels: str | None = None
    # see RECIPES
    recipe: str = "auto"
    # wise-ft: the weight a of the fine-tuned weights in theta = (1 - a) * zero-shot + a * fine-tuned;
    # "auto": chosen on folds (or the validation split); a number in [0, 1] fixes it
    mix: float | str = "auto"
    # "yes" / "no": --multi-label / --single-label, the task named by its older flags
    multi_label: str = "auto"

    def __post_init__(self) -> None:
        if self.validation not in ("auto", "cv", "split"):
            raise ZooError(f"--validation takes auto, cv or split, got {self.validation!r}")
        if self.label_prior not in ("auto", "always", "none"):
            raise ZooError(f"--label-prior takes auto, always or none, got {self.label_prior!r}")
        if self.multi_label not in ("auto", "yes", "no"):
            raise ZooError(f"multi_label takes auto, yes or no, got {self.multi_label!r}")
        if self.labels is not None and self.label_prior == "none":
            raise ZooError("--labels gives the class names for the label prior; leave out --label-prior none")
        if self.recipe not in RECIPES:
            raise ZooError(f"--recipe takes {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.mix != "auto":
            try:
                mix = float(self.mix)
            except (TypeError, ValueError):
                mix = float("nan")
            if isinstance(self.mix, bool) or not 0.0 <= mix <= 1.0:
                raise ZooError(f"--mix takes 'auto' or a weight from 0 (zero-shot) to 1 (fine-tuned), got {self.mix!r}")
            object.__setattr__(self, "mix", mix)
            if self.recipe not in ("auto", "wise-ft"):
                raise ZooError(f"--mix weighs zero-shot and fine-tuned weights (--recipe wise-ft); leave it out for "
                               f"--recipe {self.recipe}")
        if self.multi_label != "auto" and self.task not in ("auto", self.named_task):
            raise ZooError(f"--{'multi' if self.multi_label == 'yes' else 'single'}-label and --task {self.task} disagree; "
                           f"leave one out")

    @property
    def named_task(self) -> str:
        """The task asked for: ``--task``, or the one the older --multi-label / --single-label name."""
        if self.task != "auto":
            return self.task
        return {"yes": "multi-label", "no": "classification"}.get(self.multi_label, "auto")


@dataclass(frozen=True)
class HeadOptions:
    # stage 1: a new head on cached embeddings of the frozen backbone ("linear" is cross-validated
    # on frozen features; "mlp" trains by epochs on a validation split)
    kind: str = "linear"
    hidden: int = 512
    dropout: float = 0.2
    lr: float = 3e-3
    epochs: int = 300
    patience: int = 20
    label_smoothing: float = 0.1
    # "auto": balanced class weights when the largest training class is over 3x the smallest
    class_weight: str = "auto"
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        from zoo.classweights import CLASS_WEIGHTS

        if self.kind not in HEADS:
            raise ZooError(f"--head takes {', '.join(HEADS)}, got {self.kind!r}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ZooError(f"--class-weight takes {', '.join(CLASS_WEIGHTS)}, got {self.class_weight!r}")
        _positive("head_lr", self.lr)
        _positive("head_epochs", self.epochs)


@dataclass(frozen=True)
class UnfreezeOptions:
    # stage 2: gradual unfreezing from the top, one stage at a time. "auto": 0 for images, the top 2
    # stages for text and for --recipe wise-ft (an image-text model's image tower; not measured:
    # no pretrained image-text weights are reachable here), the front end's for sounds. On digits
    # (10 labels/class) unfreezing lost test accuracy (0.80 -> 0.68..0.79). On BBC News (20/class,
    # 6 seeds, bench/finetune_text.py) MiniLM's mean (worst) test accuracy was 0.911 (0.890) with
    # the head alone, 0.915 (0.890) with the top 2 layers and 0.916 (0.898) with all 6, which took
    # 2.4x as long (78 s vs 32 s).
    unfreeze: int | str = "auto"
    # None: 6, or the front end's (sounds: 10; see LEARNING)
    epochs: int | None = None
    patience: int = 2
    # None: 1e-4, or the front end's (sounds: 1e-3, see LEARNING)
    backbone_lr: float | None = None
    lr_decay: float = 0.5  # each stage further from the output learns this much slower
    # each unfrozen phase: linear warmup over this fraction of its steps, then a cosine decay to 0
    warmup: float = 0.1
    # augmentation while the backbone learns: see AUGMENTATIONS
    augment: str = "light"
    # contrastive: the pairs drawn from the labelled texts ("auto": zoo.train.contrastive.pair_count)
    pairs: int | str = "auto"
    contrastive_lr: float = 2e-5

    def __post_init__(self) -> None:
        if isinstance(self.augment, bool):  # configs written before augmentation policies
            object.__setattr__(self, "augment", "light" if self.augment else "none")
        if self.augment not in AUGMENTATIONS:
            raise ZooError(f"--augment takes {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if isinstance(self.unfreeze, str) and self.unfreeze not in ("all", "auto"):
            raise ZooError(f"--unfreeze takes a number of stages, 'all' or 'auto', got {self.unfreeze!r}")
        if isinstance(self.unfreeze, int) and self.unfreeze < 0:
            raise ZooError(f"--unfreeze must not be negative, got {self.unfreeze}")
        if self.pairs != "auto" and (isinstance(self.pairs, bool) or not isinstance(self.pairs, int) or self.pairs < 1):
            raise ZooError(f"--pairs takes a positive number of pairs or 'auto', got {self.pairs!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ZooError(f"--warmup is a fraction of a phase's steps in [0, 1), got {self.warmup}")
        for name, value in (("backbone_lr", self.backbone_lr), ("contrastive_lr", self.contrastive_lr),
                            ("unfreeze_epochs", self.epochs)):
            _positive(name, value)

    def resolved(self, modality: str, recipe: str, learning: Mapping[str, Any] | None = None) -> UnfreezeOptions:
        """``unfreeze="auto"``, ``epochs`` and ``backbone_lr`` decided for the model's modality and
        the recipe (contrastive training replaces unfreezing); ``learning``: a front end's own
        choices for them (its ``learning`` attribute), for data far from what the backbone was
        trained on; see :data:`LEARNING`."""
        learning = learning or {}
        chosen = {**LEARNING, **learning}
        out = self
        if out.unfreeze == "auto":
            # the top 2 stages for text and for an image tower fine-tuned from zero-shot (wise-ft)
            two = (modality == "text" and recipe != "contrastive") or recipe == "wise-ft"
            default = learning.get("unfreeze", 2 if two else 0)
            out = replace(out, unfreeze=0 if recipe == "contrastive" else default)
        if out.epochs is None:
            out = replace(out, epochs=int(chosen["unfreeze_epochs"]))
        if out.backbone_lr is None:
            out = replace(out, backbone_lr=float(chosen["backbone_lr"]))
        return out


@dataclass(frozen=True)
class EngineOptions:
    batch_size: int | None = None  # None: BATCH_SIZE, or the task's own (resolved before training)
    device: str | None = None
    workers: int | None = None
    # the frozen pass (stage-1 features): "auto" is onnxruntime on CPU, validated against PyTorch
    engine: str = "auto"
    # channels_last image batches (the weights are left as they are: the input's layout decides the
    # kernels): "auto" is on for images; a training step of efficientnet_lite0 on CPU measured
    # 1.6-1.8x faster with it (bench/frozen_forward.py), as it is the usual layout for convnets on CUDA
    channels_last: bool | str = "auto"

    def __post_init__(self) -> None:
        from zoo.frozen.engines import ENGINES

        if self.engine not in ENGINES:
            raise ZooError(f"--engine takes {', '.join(ENGINES)}, got {self.engine!r}")
        _positive("batch_size", self.batch_size)


#: Each option's flat name (the API's keyword, the CLI's flag, config.json's key) -> (group, field).
_FLAT: dict[str, tuple[str, str]] = {
    **{name: ("data", name) for name in ("data", "val", "test", "val_split", "per_class", "skip_bad", "target",
                                         "front_end")},
    **{name: ("plan", name) for name in ("task", "validation", "cut", "metric", "label_prior", "labels", "recipe",
                                         "multi_label", "mix")},
    "head": ("head", "kind"), "hidden": ("head", "hidden"), "dropout": ("head", "dropout"), "head_lr": ("head", "lr"),
    "head_epochs": ("head", "epochs"), "patience": ("head", "patience"),
    "label_smoothing": ("head", "label_smoothing"), "class_weight": ("head", "class_weight"),
    "weight_decay": ("head", "weight_decay"),
    "unfreeze": ("unfreezing", "unfreeze"), "unfreeze_epochs": ("unfreezing", "epochs"),
    "unfreeze_patience": ("unfreezing", "patience"), "backbone_lr": ("unfreezing", "backbone_lr"),
    "lr_decay": ("unfreezing", "lr_decay"), "warmup": ("unfreezing", "warmup"), "augment": ("unfreezing", "augment"),
    "pairs": ("unfreezing", "pairs"), "contrastive_lr": ("unfreezing", "contrastive_lr"),
    **{name: ("engine", name) for name in ("batch_size", "device", "workers", "engine", "channels_last")},
}
#: Options outside the groups (the run's seed, the registry files its card comes from, its trackers).
_TOP = ("seed", "registry", "report_to")
_GROUPS = {"data": DataOptions, "plan": PlanOptions, "head": HeadOptions, "unfreezing": UnfreezeOptions,
           "engine": EngineOptions}


@dataclass(frozen=True)
class FinetuneOptions:
    """Every option of ``zoo finetune``, grouped; the defaults are the recipe (measured in bench/)."""

    model: str
    data: DataOptions
    plan: PlanOptions = field(default_factory=PlanOptions)
    head: HeadOptions = field(default_factory=HeadOptions)
    unfreezing: UnfreezeOptions = field(default_factory=UnfreezeOptions)
    engine: EngineOptions = field(default_factory=EngineOptions)
    seed: int = 0
    # registry files the model's card comes from besides the user's own (--registry), absolute:
    # resume, export and load_model find the card with them
    registry: tuple[str, ...] = ()
    # experiment trackers the run logs to (--report-to tensorboard mlflow wandb): zoo.trackers
    report_to: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "registry", tuple(str(p) for p in self.registry))  # a JSON list when read back
        object.__setattr__(self, "report_to", tuple(str(t) for t in self.report_to))
        plan, head, unfreezing = self.plan, self.head, self.unfreezing
        if plan.recipe == "contrastive":
            if unfreezing.unfreeze not in ("auto", 0):
                raise ZooError("--recipe contrastive trains the whole encoder on pairs before the head; leave out "
                               "--unfreeze (or use --recipe gradual)")
            if plan.cut != "auto":
                raise ZooError("--recipe contrastive trains the card's embedding; leave out --cut "
                               "(or use --recipe gradual)")
            if head.kind != "linear":
                raise ZooError("--recipe contrastive fits a linear head on the adapted embeddings; leave out --head")
        if plan.validation == "cv" and (self.data.val is not None or self.data.val_split is not None):
            raise ZooError("--validation cv uses every labelled example; leave out --val and --val-split")
        if plan.validation == "cv" and head.kind != "linear":
            raise ZooError("--validation cv fits a linear head (a cross-validated logistic regression); "
                           "use --validation split for --head mlp")

    # ----------------------------------------------------------------- flat names

    @classmethod
    def from_flat(cls, model: str, data: str, **options: Any) -> FinetuneOptions:
        """From the API's and the CLI's flat names (``per_class=10``, ``unfreeze=2``); an unknown
        name is one line listing the known ones."""
        unknown = sorted(set(options) - set(_FLAT) - set(_TOP))
        if unknown:
            raise ZooError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; zoo.finetune takes "
                           f"{', '.join(sorted({*_FLAT, *_TOP}))}")
        grouped: dict[str, dict[str, Any]] = {group: {} for group in _GROUPS}
        for name, value in {"data": data, **options}.items():
            if name in _FLAT:
                group, attribute = _FLAT[name]
                grouped[group][attribute] = value
        return cls(model=model, seed=int(options.get("seed", 0)), registry=tuple(options.get("registry") or ()),
                   report_to=tuple(options.get("report_to") or ()),
                   **{group: kind(**grouped[group]) for group, kind in _GROUPS.items()})

    def to_dict(self) -> dict[str, Any]:
        """The flat form config.json holds (the API's names)."""
        out: dict[str, Any] = {"model": self.model}
        for name, (group, attribute) in _FLAT.items():
            out[name] = getattr(getattr(self, group), attribute)
        out["seed"], out["registry"], out["report_to"] = self.seed, list(self.registry), list(self.report_to)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinetuneOptions:
        """config.json's options (names it does not know, from another zoo version, are left out)."""
        known = {k: v for k, v in data.items() if k in _FLAT or k in _TOP}
        known.pop("data", None)
        return cls.from_flat(str(data["model"]), str(data["data"]), **known)

    def with_(self, **flat: Any) -> FinetuneOptions:
        """A copy with some options replaced, by their flat names."""
        return FinetuneOptions.from_dict({**self.to_dict(), **flat})


def flat_defaults() -> dict[str, Any]:
    """Each option's default, by its flat name (what the CLI shows)."""
    defaults: dict[str, Any] = {"seed": 0}
    for name, (group, attribute) in _FLAT.items():
        kind = _GROUPS[group]
        spec = next((f for f in fields(kind) if f.name == attribute), None)
        if spec is not None and spec.default is not MISSING:
            defaults[name] = spec.default
    return defaults
