"""Measure batch scoring of a generated cohort against raw ONNX Runtime.

Generates ``--rows`` users with ``ltv.sample.generate_users`` into a CSV,
which later runs reuse, and scores it with ``python -m scoring`` on a private
local Ray. Then it runs the same rows through the registered model's ONNX
graph in this process, in batches, with 1 and 2 intra-op threads. Needs a
registered champion in ``LTV_STATE_DIR`` (``make model``). Prints a Markdown
table.

    LTV_STATE_DIR=/tmp/scorebench-state .venv/bin/python -m loadtest.score_benchmark
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from ltv.sample import generate_users
from ltv.schema import RAW_FIELDS, clean_columns
from ltv.settings import get_settings
from serve.scorer import load_scorer

ROOT = Path(__file__).resolve().parent.parent


def ensure_cohort(path: Path, rows: int, seed: int) -> Path:
    """Write ``rows`` generated users to ``path`` unless it already has them."""
    if path.exists() and sum(1 for _ in path.open()) - 1 == rows:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    generate_users(rows, seed).to_csv(path, index=False)
    print(f"generated {rows:,} users in {time.perf_counter() - started:.0f} s")
    return path


def run_command(cohort: Path, output: Path, extra: list[str]) -> dict[str, float]:
    """Run the scoring command and return its wall time and its own rows per second."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "scoring", str(cohort), "--output", str(output)]
    started = time.perf_counter()
    result = subprocess.run(
        [*command, "--overwrite", "--address", "local", *extra],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    print(result.stdout)
    scoring = re.search(r"scoring time: ([\d.]+) s, ([\d,]+) rows/s", result.stdout)
    return {
        "wall_s": wall,
        "scoring_s": float(scoring.group(1)),
        "scoring_rows_per_s": float(scoring.group(2).replace(",", "")),
    }


def raw_onnxruntime(cohort: Path, batch_rows: int, threads: int) -> dict[str, float]:
    """Clean and score the cohort in one process with one session."""
    settings = get_settings()
    scorer = load_scorer(settings, settings.champion_uri, threads=threads)
    frame = pd.read_csv(cohort, dtype=str, keep_default_na=False)
    clean_s = predict_s = 0.0
    for start in range(0, len(frame), batch_rows):
        part = frame.iloc[start : start + batch_rows]
        began = time.perf_counter()
        features = clean_columns({name: part[name].tolist() for name in RAW_FIELDS})
        cleaned = time.perf_counter()
        scorer.predict(features)
        predict_s += time.perf_counter() - cleaned
        clean_s += cleaned - began
    rows = len(frame)
    return {
        "predict_rows_per_s": rows / predict_s,
        "clean_and_predict_rows_per_s": rows / (clean_s + predict_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="users to score")
    parser.add_argument("--seed", type=int, default=42, help="sample seed")
    parser.add_argument(
        "--folder",
        type=Path,
        default=Path("/tmp/score-benchmark"),
        help="folder for the generated CSV and the command's output",
    )
    parser.add_argument(
        "--batch-rows", type=int, default=10_000, help="rows per ONNX Runtime call"
    )
    args = parser.parse_args()

    cohort = ensure_cohort(args.folder / "cohort.csv", args.rows, args.seed)
    command = run_command(
        cohort, args.folder / "scored", ["--batch-size", str(args.batch_rows)]
    )
    raw = {}
    for threads in (1, 2):
        raw[threads] = raw_onnxruntime(cohort, args.batch_rows, threads)

    print(f"| measure ({args.rows:,} generated rows) | rows/s |")
    print("| --- | ---: |")
    print(
        f"| `python -m scoring`, scoring phase | {command['scoring_rows_per_s']:,.0f} |"
    )
    print(
        f"| `python -m scoring`, whole command ({command['wall_s']:.1f} s) | "
        f"{args.rows / command['wall_s']:,.0f} |"
    )
    for threads, figures in raw.items():
        print(
            f"| raw ONNX Runtime, {threads} thread(s), predict only | "
            f"{figures['predict_rows_per_s']:,.0f} |"
        )
        print(
            f"| raw ONNX Runtime, {threads} thread(s), clean + predict | "
            f"{figures['clean_and_predict_rows_per_s']:,.0f} |"
        )


if __name__ == "__main__":
    main()
