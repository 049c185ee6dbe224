"""The pictures a user looks at after training and evaluation (matplotlib, no display needed).

Written through `storage`, so they land next to a model dir on s3:// or gs:// as well. A curve is drawn only
when its series has values: a run without validation has no "val" lines, rather than empty ones.
"""
from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vidclass import storage  # noqa: E402


def _save(fig, url: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    storage.write_bytes(url, buf.getvalue())


def series(history: list[dict[str, float]], key: str) -> list[float] | None:
    """The values of `key` per epoch, or None when no epoch has a finite one (missing, NaN)."""
    values = [r.get(key) for r in history]
    if not any(v is not None and math.isfinite(v) for v in values):
        return None
    return [math.nan if v is None else float(v) for v in values]


def training_curves(history: list[dict[str, float]], path: str) -> list[str]:
    """Loss and accuracy per epoch, train and validation side by side; returns the series drawn."""
    if not history:
        return []
    epochs = [int(r["epoch"]) + 1 for r in history]
    drawn = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for name, label in ((key, f"train {key}"), (f"val_{key}", f"val {key}")):
            values = series(history, name)
            if values is not None:
                ax.plot(epochs, values, "o-", label=label)
                drawn.append(name)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return drawn


def confusion_matrix(matrix: np.ndarray, labels: list[str], path: str, title: str = "") -> None:
    """Row-normalised confusion matrix (rows: true class), with counts written in the cells."""
    n = len(labels)
    side = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    _save(fig, path)
