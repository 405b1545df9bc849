"""``zoo probe`` (``zoo.probe``): rank backbones and their cut points by a cross-validated linear probe.

- :mod:`zoo.fitting.linear`: the nested cross-validated, L2-normalised logistic-regression probe;
- :mod:`zoo.probing.run`: every cut candidate of every backbone, from one frozen pass each, ranked;
- :mod:`zoo.probing.report`: what it found, as a table and as JSON.

Names load on first use: importing this package imports neither torch nor scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from zoo.fitting.linear import CVScore, cross_validate, fit_probe
    from zoo.probing.report import ProbeReport, ProbeRow
    from zoo.probing.run import probe, read_probe

_LAZY = {
    "probe": "zoo.probing.run",
    "ProbeReport": "zoo.probing.report",
    "ProbeRow": "zoo.probing.report",
    "read_probe": "zoo.probing.run",
    "cross_validate": "zoo.fitting.linear",
    "fit_probe": "zoo.fitting.linear",
    "CVScore": "zoo.fitting.linear",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
