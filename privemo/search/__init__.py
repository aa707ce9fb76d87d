"""Hyper-parameter search: the paper's and the quick grids, the keras-tuner HyperModel, oracle and tuner, and the
selection rule that scores a trial."""
