"""The class report's plots: matplotlib figures as SVG data URIs (core/figures.py), so the page needs
no other file."""

from __future__ import annotations

from collections import Counter

from matplotlib.figure import Figure

from ..core.figures import GREY, style, svg_uri

BLUE, RED, GREEN = "#1f6feb", "#cf222e", "#1a7f37"
FAR_BELOW = 0.15   # the accuracy plot starts this far below the lowest threshold


def totals_histogram(totals: list[float], max_score: float) -> str:
    with style():
        fig = Figure(figsize=(9, 2.6))
        ax = fig.subplots()
        ax.hist(totals, bins=[i for i in range(int(max_score) + 2)], color=BLUE, edgecolor="white", align="left")
        if totals:
            mean = sum(totals) / len(totals)
            ax.axvline(mean, color=RED, linestyle="--", linewidth=1.2, label=f"moyenne {mean:.2f}")
            ax.legend(frameon=False, loc="upper center")
        ax.set_xlabel(f"note / {max_score:g}")
        ax.set_ylabel("copies")
        ax.set_xlim(-0.7, max_score + 0.7)
        ax.set_xticks(range(int(max_score) + 1))
        ax.yaxis.get_major_locator().set_params(integer=True)
        return svg_uri(fig)


def question_points(points: dict[str, list[float]], max_points: dict[str, float]) -> str:
    """One bar chart per question: how many submissions got each number of points."""
    with style():
        fig = Figure(figsize=(9, 2.3))
        axes = fig.subplots(1, len(points), squeeze=False, sharey=True)[0]
        for ax, (q, values) in zip(axes, points.items()):
            counts = Counter(values)
            ax.bar(list(counts), list(counts.values()), width=0.4, color=BLUE)
            mean = sum(values) / len(values) if values else 0
            ax.set_title(f"{q} : moyenne {mean:.2f} / {max_points[q]:g}", fontsize=9)
            ax.set_xlim(-0.5, max_points[q] + 0.5)
            ax.set_xlabel("points")
            ax.yaxis.get_major_locator().set_params(integer=True)
        axes[0].set_ylabel("copies")
        fig.tight_layout()
        return svg_uri(fig)


def accuracy_strips(accuracies: dict[str, list[tuple[float, bool]]], thresholds: dict[str, float]) -> str:
    """Per question, each submission's measured test accuracy as a dot, the threshold as a dashed line.

    ``accuracies`` holds (accuracy, trained on test images) pairs: such a model is drawn as a cross,
    whatever its accuracy, since its accuracy check failed.
    """
    with style():
        fig = Figure(figsize=(9, 0.9 + 0.8 * len(accuracies)))
        axes = fig.subplots(len(accuracies), 1, squeeze=False, sharex=True)[:, 0]
        # Far below every threshold nothing needs reading: such accuracies are drawn at the left edge, as ◀.
        low = max(0.0, min(thresholds.values(), default=0.8) - FAR_BELOW)
        for ax, (q, points) in zip(axes, accuracies.items()):
            threshold = thresholds[q]
            jitter = [((i * 7) % 11 - 5) / 12 for i in range(len(points))]   # spread equal values, deterministically
            honest = [(a, y) for (a, tainted), y in zip(points, jitter) if not tainted and a >= low]
            tainted = [(max(a, low), y) for (a, t), y in zip(points, jitter) if t]
            far = [y for (a, t), y in zip(points, jitter) if not t and a < low]
            ax.scatter([a for a, _ in honest], [y for _, y in honest], s=14, alpha=0.8,
                       color=[GREEN if a >= threshold else RED for a, _ in honest])
            if far:
                ax.scatter([low] * len(far), far, s=24, marker="<", color=RED, clip_on=False)
            if tainted:
                ax.scatter([a for a, _ in tainted], [y for _, y in tainted], s=30, marker="x", color=RED,
                           label="entraîné avec des images de test")
                ax.legend(frameon=False, loc="lower left", fontsize=8)
            ax.axvline(threshold, color=GREY, linestyle="--", linewidth=1.2)
            ax.text(threshold, 0.75, f" seuil {threshold:.2f}", color=GREY, va="center")
            ax.set_ylim(-1, 1)
            ax.set_yticks([0], [f"{q} ({len(points)})"])
            ax.set_xlim(low, 1.0)
        axes[-1].set_xlabel("précision mesurée sur les 10 000 images de test")
        fig.tight_layout()
        return svg_uri(fig)
