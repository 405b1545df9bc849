"""Fine-tuning: the transfer-learning recipe behind ``zoo finetune`` (see :mod:`zoo.train.run`)."""

from zoo.train.run import Run, finetune, open_run

__all__ = ["finetune", "Run", "open_run"]
