"""Experiments built from training runs: k-fold cross-validation (ADE) and ablations."""
