"""The resolved configuration of a fine-tuning run (written to the run folder as config.json)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from collections.abc import Mapping
from typing import Any

from zoo.errors import ZooError

__all__ = ["FinetuneConfig", "AUGMENTATIONS", "RECIPES"]

#: ``gradual``: a head on the frozen embeddings, then the top stages unfrozen one by one
#: (zoo.train.recipe); ``contrastive``: the whole text encoder trained on pairs of the labelled
#: texts first, then the head (zoo.train.contrastive); ``auto``: chosen from the data's size and
#: modality by zoo.train.run._recipe, as measured in bench/text_fewshot.py.
RECIPES = ("auto", "gradual", "contrastive")

#: Image augmentation policies for unfrozen phases, all torchvision.transforms.v2 and built by
#: zoo.batches.augmentation (no flips: digits and text in images are not mirror-symmetric):
#: ``light`` a random crop of 70-100% of the area with a small aspect change plus a mild
#: brightness/contrast jitter (the default, as before the move to v2); ``trivialaugment`` and
#: ``randaugment`` torchvision's policies; ``none``.
AUGMENTATIONS = ("light", "trivialaugment", "randaugment", "none")

#: What ``unfreeze_epochs`` and ``backbone_lr`` are when left out (None). A front end may choose its
#: own (``learning``, with ``unfreeze`` for "auto" too): the log-mel one unfreezes every stage at
#: 1e-3 for 10 epochs each, because spectrograms are far from ImageNet's photographs: on spoken
#: digits (10 clips per class, bench/audio_digits.py) the head alone scored 0.945 on unseen voices
#: against the MFCC baseline's 0.960; the top 2 stages (at 1e-4 or 1e-3) or every stage at 3e-4 gained
#: nothing on the folds (not kept), every stage at 1e-3 for 10 epochs each reached 0.970 (seed 0).
LEARNING: dict[str, Any] = {"unfreeze_epochs": 6, "backbone_lr": 1e-4}


@dataclass(frozen=True)
class FinetuneConfig:
    """Every knob of ``zoo finetune``; the defaults are the recipe (see README: measured on digits)."""

    # what
    model: str
    data: str
    val: str | None = None
    test: str | None = None
    # None: 0.2 when a validation split is used (giving it, or --val, asks for one)
    val_split: float | None = None
    per_class: int | None = None
    # "auto": "cv" up to zoo.train.selection.CV_PER_CLASS labelled examples per class (cut and
    # head chosen by cross-validation on all of them, then fitted on all), "split" above (a
    # validation split, early stopping, rollback to the best epoch)
    validation: str = "auto"
    # where the embedding is taken: "auto" (cv: chosen by cross-validation among the card's
    # embedding, its features and all of them joined; split: the card's embedding), "all", a
    # feature name, or names joined by "+"
    cut: str = "auto"
    # what the regularisation, the choice to keep unfrozen layers and the baseline line judge by
    metric: str = "accuracy"
    # "auto": a cross-validated text run with at most zoo.train.prior.PRIOR_PER_CLASS labelled
    # texts per class mixes its head with the class names' zero-shot classifier, the mixture's
    # weight chosen on folds; "always": at any size; "none": the head alone
    label_prior: str = "auto"
    # the class names to embed for the prior (as `zoo fewshot --labels`: names, a file of names or
    # `name: description` lines); None: the data's label names. Given, the prior is used at any size
    labels: str | None = None
    skip_bad: bool = False
    # registry files the model's card comes from besides the user's own (--registry), absolute:
    # resume, export and load_model find the card with them
    registry: tuple[str, ...] = ()
    # see RECIPES
    recipe: str = "auto"
    # "auto": multi-label when a label cell names several labels ("a;b"); "yes"; "no" (such a
    # cell is then an error). Multi-label runs: zoo.train.multilabel
    multi_label: str = "auto"
    # contrastive: the pairs drawn from the labelled texts ("auto": zoo.train.contrastive.pair_count)
    pairs: int | str = "auto"
    contrastive_lr: float = 2e-5
    # stage 1: a new head on cached embeddings of the frozen backbone
    head: str = "linear"
    hidden: int = 512
    dropout: float = 0.2
    head_lr: float = 3e-3
    head_epochs: int = 300
    patience: int = 20
    label_smoothing: float = 0.1
    # "auto": balanced class weights when the largest training class is over 3x the smallest
    class_weight: str = "auto"
    weight_decay: float = 1e-4
    # stage 2: gradual unfreezing from the top, one stage at a time
    # "auto": 0 for images, the top 2 stages for text. On digits (10 labels/class) unfreezing lost
    # test accuracy (0.80 -> 0.68..0.79). On BBC News (20/class, 6 seeds, bench/finetune_text.py)
    # MiniLM's mean (worst) test accuracy was 0.911 (0.890) with the head alone, 0.915 (0.890) with
    # the top 2 layers and 0.916 (0.898) with all 6, which took 2.4x as long (78 s vs 32 s).
    unfreeze: int | str = "auto"
    # None: 6, or the front end's (sounds: 10; see LEARNING)
    unfreeze_epochs: int | None = None
    unfreeze_patience: int = 2
    # None: 1e-4, or the front end's (sounds: 1e-3, see LEARNING)
    backbone_lr: float | None = None
    lr_decay: float = 0.5  # each stage further from the output learns this much slower
    # each unfrozen phase: linear warmup over this fraction of its steps, then a cosine decay to 0
    warmup: float = 0.1
    # image augmentation while the backbone learns (torchvision.transforms.v2): see zoo.batches.AUGMENTATIONS
    augment: str = "light"
    # data of another modality (sounds for an image backbone): the front end's settings
    # ({"clip_seconds": 2}); the run records every parameter, resolved ({"name", "modality", "params"})
    front_end: dict | None = None
    # how
    batch_size: int = 32
    seed: int = 0
    device: str | None = None
    workers: int | None = None
    # the frozen pass (stage-1 features): "auto" is onnxruntime on CPU, validated against PyTorch
    engine: str = "auto"
    # channels_last image batches (the weights are left as they are: the input's layout decides the
    # kernels): "auto" is on for images; a training step of efficientnet_lite0 on CPU measured
    # 1.6-1.8x faster with it (bench/frozen_forward.py), as it is the usual layout for convnets on CUDA
    channels_last: bool | str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "registry", tuple(str(p) for p in self.registry))  # a JSON list when read back
        if isinstance(self.augment, bool):  # configs written before augmentation policies
            object.__setattr__(self, "augment", "light" if self.augment else "none")
        if self.augment not in AUGMENTATIONS:
            raise ZooError(f"--augment takes {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if self.validation not in ("auto", "cv", "split"):
            raise ZooError(f"--validation takes auto, cv or split, got {self.validation!r}")
        if self.label_prior not in ("auto", "always", "none"):
            raise ZooError(f"--label-prior takes auto, always or none, got {self.label_prior!r}")
        if self.multi_label not in ("auto", "yes", "no"):
            raise ZooError(f"multi_label takes auto, yes or no, got {self.multi_label!r}")
        if self.multi_label == "yes":
            self.check_multi_label()
        if self.labels is not None and self.label_prior == "none":
            raise ZooError("--labels gives the class names for the label prior; leave out --label-prior none")
        if self.recipe not in RECIPES:
            raise ZooError(f"--recipe takes {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.pairs != "auto" and (isinstance(self.pairs, bool) or not isinstance(self.pairs, int) or self.pairs < 1):
            raise ZooError(f"--pairs takes a positive number of pairs or 'auto', got {self.pairs!r}")
        if self.recipe == "contrastive":
            if self.unfreeze not in ("auto", 0):
                raise ZooError("--recipe contrastive trains the whole encoder on pairs before the head; leave out "
                               "--unfreeze (or use --recipe gradual)")
            if self.cut != "auto":
                raise ZooError("--recipe contrastive trains the card's embedding; leave out --cut "
                               "(or use --recipe gradual)")
            if self.head != "linear":
                raise ZooError("--recipe contrastive fits a linear head on the adapted embeddings; leave out --head")
        if self.metric not in ("accuracy", "macro_f1"):
            raise ZooError(f"--metric takes accuracy or macro_f1, got {self.metric!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ZooError(f"--warmup is a fraction of a phase's steps in [0, 1), got {self.warmup}")
        if self.validation == "cv" and (self.val is not None or self.val_split is not None):
            raise ZooError("--validation cv uses every labelled example; leave out --val and --val-split")
        if self.validation == "cv" and self.head != "linear":
            raise ZooError("--validation cv fits a linear head (a cross-validated logistic regression); "
                           "use --validation split for --head mlp")
        if self.val_split is not None and not 0.0 < self.val_split < 1.0:
            raise ZooError(f"--val-split must be between 0 and 1, got {self.val_split}")
        if self.per_class is not None and self.per_class < 1:
            raise ZooError(f"--per-class must be at least 1, got {self.per_class}")
        if isinstance(self.unfreeze, str) and self.unfreeze not in ("all", "auto"):
            raise ZooError(f"--unfreeze takes a number of stages, 'all' or 'auto', got {self.unfreeze!r}")
        if isinstance(self.unfreeze, int) and self.unfreeze < 0:
            raise ZooError(f"--unfreeze must not be negative, got {self.unfreeze}")
        from zoo.frozen.choice import ENGINES
        from zoo.classweights import CLASS_WEIGHTS

        if self.class_weight not in CLASS_WEIGHTS:
            raise ZooError(f"--class-weight takes {', '.join(CLASS_WEIGHTS)}, got {self.class_weight!r}")

        if self.engine not in ENGINES:
            raise ZooError(f"--engine takes {', '.join(ENGINES)}, got {self.engine!r}")
        for name in ("head_lr", "backbone_lr", "batch_size", "head_epochs", "contrastive_lr", "unfreeze_epochs"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ZooError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")

    def check_multi_label(self) -> None:
        """A multi-label run is a head per label on cached embeddings, cross-validated on every
        labelled example: the options that ask for something else say so."""
        asked = [flag for flag, given in (
            ("--per-class", self.per_class is not None), ("--val-split", self.val_split is not None),
            ("--validation split", self.validation == "split"), ("--recipe contrastive", self.recipe == "contrastive"),
            ("--unfreeze", self.unfreeze not in ("auto", 0)), ("--head mlp", self.head != "linear"),
            ("--cut", self.cut != "auto"), ("--label-prior always", self.label_prior == "always")) if given]
        if asked:
            raise ZooError(f"a multi-label run fits one logistic regression per label on the frozen embeddings, "
                           f"cross-validated on every labelled example; {', '.join(asked)} "
                           f"{'does' if len(asked) == 1 else 'do'} not apply (give a --test set to hold data out)")

    @property
    def split_fraction(self) -> float:
        """The validation fraction of a split (the default when none was asked for)."""
        return 0.2 if self.val_split is None else self.val_split

    def resolved(self, modality: str, learning: Mapping[str, Any] | None = None) -> FinetuneConfig:
        """The configuration with ``unfreeze="auto"``, ``unfreeze_epochs`` and ``backbone_lr``
        decided for the model's modality and the recipe (decided first: contrastive training
        replaces unfreezing). ``learning``: a front end's own choices for them (its ``learning``
        attribute), for data far from what the backbone was trained on; see :data:`LEARNING`."""
        learning = learning or {}
        chosen = {**LEARNING, **learning}
        out = self
        if out.unfreeze == "auto":
            default = learning.get("unfreeze", 2 if modality == "text" and self.recipe != "contrastive" else 0)
            out = replace(out, unfreeze=0 if self.recipe == "contrastive" else default)
        if out.unfreeze_epochs is None:
            out = replace(out, unfreeze_epochs=int(chosen["unfreeze_epochs"]))
        if out.backbone_lr is None:
            out = replace(out, backbone_lr=float(chosen["backbone_lr"]))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
