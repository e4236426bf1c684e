"""Draw an evaluation report: recall@k and NDCG@k per model and baseline, and lists' overlap."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from generator.evaluate import Report


def plot(report: Report, path: Path) -> None:
    """Draw recall@k and NDCG@k per model and baseline, and the models' neighbour overlap."""
    # Imported here: matplotlib is slow to import and only the CLI's --plot needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted(report.models, key=lambda h: report.models[h].recall)
    rows = [
        *[(f"({name})", s) for name, s in report.baselines.items()],
        *[(handle, report.models[handle]) for handle in ranked],
    ]
    figure, (bars, heat) = plt.subplots(
        1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.25, 1]}
    )
    y = np.arange(len(rows))
    height = 0.38
    bars.barh(y + height / 2, [s.recall for _, s in rows], height, label=f"recall@{report.k}")
    bars.barh(y - height / 2, [s.ndcg for _, s in rows], height, label=f"NDCG@{report.k}")
    for position, (_, s) in zip(y, rows, strict=True):
        bars.text(s.recall, position + height / 2, f" {s.recall:.3f}", va="center", fontsize=8)
    bars.set_yticks(y, [name for name, _ in rows])
    bars.set_xlabel("share of hidden courses found (higher is better)")
    bars.set_title(
        f"Hold-out of each user's latest courses: {report.users_evaluated:,} users, "
        f"{report.top_n_stored} neighbours",
        fontsize=10,
    )
    bars.legend(loc="lower right")
    bars.grid(axis="x", alpha=0.3)

    handles = [h for h in reversed(ranked) if h in report.overlap]
    if len(handles) > 1:
        grid = np.array(
            [[1.0 if a == b else report.overlap[a][b] for b in handles] for a in handles]
        )
        image = heat.imshow(grid, vmin=0, vmax=1, cmap="Blues")
        heat.set_xticks(range(len(handles)), handles, rotation=30, ha="right")
        heat.set_yticks(range(len(handles)), handles)
        for (i, j), value in np.ndenumerate(grid):
            colour = "white" if value > 0.6 else "black"
            heat.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=colour)
        heat.set_title(f"Mean Jaccard overlap of top-{report.k} neighbour lists", fontsize=10)
        figure.colorbar(image, ax=heat, fraction=0.046)
    else:
        heat.axis("off")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
