"""The cross-validated fits on frozen features that the layers above share: the L2-normalised
logistic-regression probe (:mod:`zoo.fitting.linear`), ridge for numbers (:mod:`zoo.fitting.ridge`)
and the joined cut candidates (:mod:`zoo.fitting.cuts`).

Below the tasks (whose frozen heads they fit), the frozen pass (which joins candidates) and the
probe (which ranks them): numpy and scikit-learn only, imported where used.
"""
