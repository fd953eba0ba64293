"""The learning-curve picture written next to the model after every epoch.

matplotlib comes with the optional ``plots`` extra; without it no picture is written and one warning
per process says so.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from deeprel.extras import MissingExtraError, require

_warned = False  # the missing-matplotlib warning is given once per process


def plot_learning_curve(rows: list[dict[str, Any]], path: Path) -> None:
    """Training loss and, where there is a dev set, dev micro F1 (NER and RE) per epoch and phase."""
    global _warned
    try:
        require("plots", "the learning-curve plot")
    except MissingExtraError as error:
        if not _warned:
            _warned = True
            warnings.warn(f"{error}; no {path.name} is written", stacklevel=2)
        return
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, (losses, scores) = plt.subplots(1, 2, figsize=(10, 4))
    for phase in dict.fromkeys(r["phase"] for r in rows):
        epochs = [r for r in rows if r["phase"] == phase]
        x = [r["epoch"] for r in epochs]
        losses.plot(x, [r["loss"] for r in epochs], marker="o", label=f"{phase}: loss")
        if "dev_ner_micro_f1" in epochs[0]:
            scores.plot(x, [r["dev_ner_micro_f1"] for r in epochs], marker="o", label=f"{phase}: dev NER")
            scores.plot(x, [r["dev_re_micro_f1"] for r in epochs], marker="s", label=f"{phase}: dev RE")
    losses.set(xlabel="epoch", ylabel="training loss", title="loss")
    scores.set(xlabel="epoch", ylabel="micro F1 (%)", title="dev set (strict)")
    for axis in (losses, scores):
        if axis.lines:
            axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    temporary = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    temporary.replace(path)
