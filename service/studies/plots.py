"""evolve.png: YOLOv5's picture of an evolution, fitness against each searched hyp."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
from optuna.trial import FrozenTrial

from service.plotting import PYPLOT_LOCK  # also sets the headless backend, before pyplot draws


def evolve_png(trials: Sequence[FrozenTrial], keys: Sequence[str], best_number: int) -> bytes:
    """One small scatter per key (value against fitness, coloured by fitness), the best trial marked
    with a large black cross and its value in the title, as YOLOv5's plot_evolve draws it."""
    with PYPLOT_LOCK:
        return _evolve_png(trials, keys, best_number)


def _evolve_png(trials: Sequence[FrozenTrial], keys: Sequence[str], best_number: int) -> bytes:
    trials = [t for t in trials if t.value is not None]
    cols = min(5, len(keys))
    rows = math.ceil(len(keys) / cols)
    figure, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.2 * rows), squeeze=False, tight_layout=True)
    fitness = [float(t.value) for t in trials]  # type: ignore[arg-type]
    best = next(t for t in trials if t.number == best_number)
    for index, ax in enumerate(axes.flat):
        if index >= len(keys):
            ax.axis("off")
            continue
        key = keys[index]
        xs = [t.params.get(key, math.nan) for t in trials]
        ax.scatter(xs, fitness, c=fitness, cmap="viridis", alpha=0.8, edgecolors="none", s=18)
        if key in best.params:
            ax.plot(best.params[key], best.value, "k+", markersize=15)
            ax.set_title(f"{key} = {best.params[key]:.3g}", fontsize=9)
        else:
            ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
        if index % cols:
            ax.set_yticklabels([])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
