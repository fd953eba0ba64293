"""Experiments built from training runs: several seeds, k-fold cross-validation (ADE) and ablations."""
