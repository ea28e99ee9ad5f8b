"""The evaluation report: ``report.json`` and its pictures, written into one folder.

:func:`write_report` writes the report of :func:`jaxhash.evaluation.protocols.evaluate` (its
schema) with ``pr_curve.png`` (precision against recall over the Hamming radius), ``hp_at_k.png``
(HP@k against k) and, given a :class:`~jaxhash.evaluation.retrieval_grid.RetrievalGrid`,
``retrieval_grid.png``; each row of the report is drawn in its own style (:data:`_ROW_STYLES`).
A trainer's evaluation of checkpoint ``N`` goes to :func:`report_dir` ``(workdir, N)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from jaxhash.evaluation.retrieval_grid import RetrievalGrid, draw_grid


def report_dir(workdir: str | os.PathLike, step: int) -> Path:
    """``workdir/eval/step_<step>``: the folder of the evaluation of checkpoint ``step``."""
    return Path(workdir) / "eval" / f"step_{int(step)}"


def write_report(
    report: dict, run_dir: str | os.PathLike, grid: RetrievalGrid | None = None
) -> dict[str, str]:
    """Write ``report.json`` and the pictures into ``run_dir``; returns ``{name: path}``.

    Pictures: ``pr_curve.png`` (precision against recall over the Hamming radius 0..K),
    ``hp_at_k.png`` (HP@k against k, given class similarities) and, given ``grid`` (from
    :func:`jaxhash.evaluation.retrieval_grid.evaluation_grid`), ``retrieval_grid.png``. Their
    file names are listed in the report under ``"plots"``.
    """
    os.makedirs(run_dir, exist_ok=True)
    paths = _plots(report, run_dir)
    if grid is not None and grid.rows:
        paths["retrieval_grid"] = draw_grid(
            grid.rows,
            os.path.join(run_dir, "retrieval_grid.png"),
            title=f"Nearest database images by Hamming distance ({_describe(report)})",
            colour_label=grid.colour_label,
            note=grid.note,
        )
    report["plots"] = sorted(os.path.basename(p) for p in paths.values())
    paths["report"] = os.path.join(run_dir, "report.json")
    with open(paths["report"], "w") as f:
        json.dump(report, f, indent=1, allow_nan=False)
    return paths


# Legend text and line style of each row of the report.
_ROW_STYLES = {
    "hamming": ("learned codes (Hamming)", dict(color="C0", linewidth=2.0)),
    "random_codes": ("random codes (Hamming)", dict(color="0.45", linestyle="--")),
    "euclidean": ("real-valued outputs (Euclidean)", dict(color="C1")),
    "cosine": ("real-valued outputs (cosine)", dict(color="C2")),
}


def _describe(report: dict) -> str:
    protocol = report["protocol"].replace("_", " ")
    return f"{report['code_length']} bits, {protocol}"


def _plots(report: dict, run_dir) -> dict[str, str]:
    """The curves of the report as PNGs: ``{"pr_curve": path, "hp_at_k": path}`` (those that
    apply)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def style(name):
        return _ROW_STYLES.get(name, (name, {}))

    paths = {}
    subtitle = (
        f"{_describe(report)}; {report['num_queries']} queries, "
        f"{report['num_database']} database items"
    )
    pr_rows = {
        k: r["curves"]["pr_radius"] for k, r in report["rows"].items() if "pr_radius" in r["curves"]
    }
    if pr_rows:
        fig, ax = plt.subplots(figsize=(6, 4.6))
        for name, pr in pr_rows.items():
            label, kwargs = style(name)
            ax.plot(pr["recall"], pr["precision"], marker=".", label=label, **kwargs)
            if name == "hamming":  # mark a few radii on the learned codes' curve
                for r in sorted({0, 2, len(pr["recall"]) // 4} & set(range(len(pr["recall"])))):
                    ax.annotate(
                        f"r={r}",
                        (pr["recall"][r], pr["precision"][r]),
                        textcoords="offset points",
                        xytext=(2, 6),
                        fontsize=7,
                        color=kwargs.get("color", "black"),
                    )
        ax.set(
            xlabel="recall (items within the radius / all relevant)",
            ylabel="precision (relevant / items within the radius)",
            xlim=(0, 1.02),
            ylim=(0, 1.02),
        )
        ax.set_title(f"Precision-recall over Hamming radius 0..K\n{subtitle}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
        paths["pr_curve"] = os.path.join(run_dir, "pr_curve.png")
        fig.tight_layout()
        fig.savefig(paths["pr_curve"], dpi=120)
        plt.close(fig)
    hp_rows = {
        k: r["curves"]["hp_at_k"] for k, r in report["rows"].items() if "hp_at_k" in r["curves"]
    }
    if hp_rows:
        fig, ax = plt.subplots(figsize=(6, 4.6))
        for name, hp in hp_rows.items():
            label, kwargs = style(name)
            ax.plot(np.arange(1, len(hp) + 1), hp, label=label, **kwargs)
        ax.set(xlabel="k (top k results)", ylabel="HP@k (hierarchical precision)", ylim=(0, 1.02))
        ax.set_xlim(1, max(len(hp) for hp in hp_rows.values()))
        ax.set_title(f"Hierarchical precision at k\n{subtitle}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
        paths["hp_at_k"] = os.path.join(run_dir, "hp_at_k.png")
        fig.tight_layout()
        fig.savefig(paths["hp_at_k"], dpi=120)
        plt.close(fig)
    return paths


__all__ = ["report_dir", "write_report"]
