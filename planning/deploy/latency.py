"""Latency statistics and the latency histogram shared by the benches (``bench``, ``bench peers=...``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def summarize(ms: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """p50, p90 and p99 in milliseconds of every series."""
    return {k: {"p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90)), "p99": float(np.percentile(v, 99))}
            for k, v in ms.items()}  # fmt: skip


def histogram(ms: dict[str, np.ndarray], path: Path, xlabel: str) -> None:
    """One overlaid latency histogram per series (milliseconds per frame), written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    top = max(np.percentile(v, 99.5) for v in ms.values())
    bins = np.linspace(0, top * 1.05, 60)
    for name, v in ms.items():
        ax.hist(v, bins=bins, alpha=0.55, label=f"{name}: p50 {np.median(v):.1f} ms")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
