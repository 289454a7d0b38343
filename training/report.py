"""Model report: comparison table and plots, written as Markdown with PNGs."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from training.evaluate import METRIC_NAMES  # noqa: E402

DECILES = 10


def comparison_table(
    summaries: dict[str, dict[str, float]], chosen: str
) -> pd.DataFrame:
    """Return one row per candidate with each metric as mean ± standard deviation."""
    rows = []
    for name, summary in summaries.items():
        row = {"candidate": f"**{name}**" if name == chosen else name}
        for metric in METRIC_NAMES:
            mean = summary[f"cv_{metric}_mean"]
            std = summary[f"cv_{metric}_std"]
            row[metric] = "n/a" if np.isnan(mean) else f"{mean:.4g} ± {std:.2g}"
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.to_numpy()]
    return "\n".join([header, rule, *body])


def plot_predicted_vs_actual(actual, predicted, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.scatter(np.log1p(actual), np.log1p(predicted), s=3, alpha=0.3)
    limit = max(np.log1p(actual).max(), np.log1p(predicted).max())
    axes.plot([0, limit], [0, limit], color="black", linewidth=0.8)
    axes.set_xlabel("log1p(actual revenue)")
    axes.set_ylabel("log1p(predicted revenue)")
    axes.set_title("Out-of-fold prediction vs actual")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def decile_table(actual, predicted) -> pd.DataFrame:
    ranks = pd.Series(predicted).rank(method="first")
    decile = pd.qcut(ranks, DECILES, labels=range(1, DECILES + 1))
    frame = pd.DataFrame({"decile": decile, "actual": actual, "predicted": predicted})
    means = frame.groupby("decile", observed=True)[["predicted", "actual"]].mean()
    means.index = means.index.astype(int)
    return means


def plot_deciles(table: pd.DataFrame, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6, 4))
    positions = np.arange(len(table))
    axes.bar(positions - 0.2, table["predicted"], width=0.4, label="mean predicted")
    axes.bar(positions + 0.2, table["actual"], width=0.4, label="mean actual")
    axes.set_yscale("symlog", linthresh=0.01)
    axes.set_xticks(positions, [str(d) for d in table.index])
    axes.set_xlabel("decile of prediction (10 = highest)")
    axes.set_ylabel("revenue")
    axes.set_title("Calibration by decile")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_cumulative_revenue(actual, predicted, path: Path) -> None:
    order = np.argsort(-predicted, kind="stable")
    captured = np.cumsum(actual[order]) / actual.sum()
    share = np.arange(1, len(actual) + 1) / len(actual)
    perfect = np.cumsum(np.sort(actual)[::-1]) / actual.sum()
    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    axes.plot(share, captured, label="model")
    axes.plot(share, perfect, linestyle="--", label="perfect ordering")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="random")
    axes.set_xscale("log")
    axes.set_xlabel("share of users, highest predicted first")
    axes.set_ylabel("share of total revenue captured")
    axes.set_title("Cumulative revenue captured")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_importance(importance: pd.Series, path: Path) -> None:
    ordered = importance.sort_values()
    figure, axes = plt.subplots(figsize=(6, 4.5))
    axes.barh(ordered.index, ordered.to_numpy())
    axes.set_xlabel("total gain")
    axes.set_title("Feature importance (gain)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(
    folder: Path,
    quality_section: str,
    summaries: dict[str, dict[str, float]],
    descriptions: dict[str, str],
    chosen: str,
    actual: np.ndarray,
    out_of_fold: np.ndarray,
    importance: pd.Series,
    folds: int,
    repeats: int,
) -> Path:
    """Write ``report.md`` and its plots into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    table = comparison_table(summaries, chosen)
    deciles = decile_table(actual, out_of_fold)

    plot_predicted_vs_actual(actual, out_of_fold, folder / "predicted_vs_actual.png")
    plot_deciles(deciles, folder / "deciles.png")
    plot_cumulative_revenue(actual, out_of_fold, folder / "cumulative_revenue.png")
    plot_importance(importance, folder / "feature_importance.png")

    candidates = "\n".join(f"- `{name}`: {text}" for name, text in descriptions.items())
    decile_lines = _markdown_table(deciles.reset_index().round(4))
    text = f"""# Model report

{quality_section}
## Candidates

Each candidate was fitted and scored on the same {folds}-fold cross-validation
repeated {repeats} times; figures are mean ± standard deviation over the
{folds * repeats} folds. The served model is **{chosen}**.

{candidates}

{_markdown_table(table)}

## Plots of the served model

Out-of-fold predictions from the first repeat.

![predicted vs actual](predicted_vs_actual.png)

![calibration by decile](deciles.png)

{decile_lines}

![cumulative revenue](cumulative_revenue.png)

![feature importance](feature_importance.png)
"""
    path = folder / "report.md"
    path.write_text(text)
    table.to_csv(folder / "comparison.csv", index=False)
    return path
