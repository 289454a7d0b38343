"""Generate a users CSV with the real file's schema and its kinds of mess.

A fresh clone trains and tests on this sample when ``REVENUE_DATA`` is unset.
The figures below (country shares, revenue per event, missing shares) were
chosen to resemble the real install cohort, not fitted to it.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

# country: (share of users, median revenue per event_2, regions)
COUNTRIES = {
    "es": (0.64, 0.0019, ["Madrid", "Catalonia", "Valencia", "Andalusia"]),
    "fr": (0.16, 0.0030, ["Ile-de-France", "Occitanie", "Brittany"]),
    "mx": (0.05, 0.0018, ["Mexico City", "Jalisco"]),
    "ar": (0.03, 0.0009, ["Buenos Aires", "Cordoba"]),
    "us": (0.02, 0.0127, ["California", "Texas", "New York"]),
    "it": (0.02, 0.0025, ["Lazio", "Lombardy"]),
    "de": (0.01, 0.0043, ["Bavaria", "Berlin"]),
    "co": (0.01, 0.0019, ["Bogota"]),
    "ca": (0.01, 0.0053, ["Ontario", "Quebec"]),
    # A few users earn 10^4 to 10^5 times more per event, as in the real data.
    "pe": (0.006, 150.0, ["Lima", "Arequipa", "La Libertad"]),
}
RARE_COUNTRIES = ["is", "mt", "bo", "uy", "nz", "sg", "za", "kr"]
DEVICES = {
    "Android": [
        "Samsung Galaxy Phone",
        "Huawei Phone",
        "Xiaomi Phone",
        "samsung samsung SM-A107M",
        "Redmi Xiaomi Redmi Note 9 Pro",
    ],
    "iOS": ["Apple iPhone", "Apple iPad", "Apple iPad11,6", "Apple iPad7,11"],
}
OS_VERSIONS = {
    "Android": ["10", "9", "8.0.0", "8.1.0", "11", "7.0", "6.0.1"],
    "iOS": ["14.4", "14.3", "12.5.1", "14.2", "13.7", "14.0.1"],
}


def generate_users(rows: int, seed: int = 42) -> pd.DataFrame:
    """Return ``rows`` generated users with the columns of the real CSV."""
    rng = np.random.default_rng(seed)
    names = list(COUNTRIES)
    shares = np.array([COUNTRIES[c][0] for c in names])
    rare_share = 0.01
    shares = shares / shares.sum() * (1 - rare_share)
    country = rng.choice(names + ["rare"], size=rows, p=[*shares, rare_share])
    rare = country == "rare"
    country[rare] = rng.choice(RARE_COUNTRIES, size=rare.sum())

    rate = np.array([COUNTRIES.get(c, (0, 0.003, []))[1] for c in country])
    region = np.array(
        [rng.choice(COUNTRIES[c][2]) if c in COUNTRIES else "Capital" for c in country],
        dtype=object,
    )

    platform = rng.choice(["Android", "iOS"], size=rows, p=[0.64, 0.36])
    device = np.array([rng.choice(DEVICES[p]) for p in platform], dtype=object)
    os_version = np.array([rng.choice(OS_VERSIONS[p]) for p in platform], dtype=object)
    ios = platform == "iOS"
    rate = rate * np.where(ios, 1.4, 1.0)

    # Zero-inflated, heavy-tailed event counts.
    active = rng.random(rows) > 0.4
    event_2 = np.where(active, rng.negative_binomial(0.6, 0.01, rows), 0)
    event_1 = np.where(
        rng.random(rows) < 0.05, rng.negative_binomial(0.3, 0.002, rows), 0
    )
    event_3 = rng.poisson(event_2 * 0.05 + 0.2).astype(float)

    noise = rng.lognormal(0.0, 0.2, rows)
    revenue = rate * noise * (event_2 + 0.5 * event_3 * (event_2 == 0))
    revenue = np.round(revenue, 6)

    frame = pd.DataFrame(
        {
            "user_id": [f"{v:08x}" for v in rng.choice(2**32, rows, replace=False)],
            "country": country,
            "country_region": region,
            "source": rng.choice(["Organic", "Non-Organic"], size=rows, p=[0.75, 0.25]),
            "platform": platform,
            "device_family": device,
            "os_version": os_version,
            "event_1": event_1,
            "event_2": event_2,
            "event_3": event_3,
            "revenue": revenue,
        }
    )
    return _add_mess(frame, rng)


def _add_mess(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Blank some values and vary letter case and spaces, as the real file does."""
    rows = len(frame)
    frame["country_region"] = frame["country_region"].where(rng.random(rows) > 0.03, "")
    frame["source"] = frame["source"].where(rng.random(rows) > 0.04, "")
    frame["event_3"] = frame["event_3"].where(rng.random(rows) > 0.02, np.nan)

    lower = rng.random(rows) < 0.05
    frame.loc[lower, "platform"] = frame.loc[lower, "platform"].str.lower()
    padded = rng.random(rows) < 0.01
    frame.loc[padded, "device_family"] = " " + frame.loc[padded, "device_family"] + " "
    return frame


def ensure_sample(path: Path, rows: int, seed: int) -> Path:
    """Write the sample to ``path`` unless a file is already there."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate_users(rows, seed).to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="CSV file to write")
    parser.add_argument("--rows", type=int, default=20_000, help="number of users")
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    args = parser.parse_args()
    generate_users(args.rows, args.seed).to_csv(args.output, index=False)
    print(f"wrote {args.rows} users to {args.output}")


if __name__ == "__main__":
    main()
