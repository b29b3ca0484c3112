"""Figures people would rather look at than read."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def loss_plot(history: dict, path, title: str = "MDRNN training") -> None:
    """Training vs validation loss per epoch, the best epoch marked."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    epochs = range(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="training", color="tab:blue")
    if history.get("val_loss"):
        val = history["val_loss"]
        ax.plot(epochs, val, label="validation", color="tab:orange")
        best = min(range(len(val)), key=val.__getitem__)
        ax.scatter([best + 1], [val[best]], color="tab:orange", zorder=3,
                   label=f"best: {val[best]:.3f} (epoch {best + 1})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mixture negative log-likelihood)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
