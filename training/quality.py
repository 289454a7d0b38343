"""Data quality checks run before every training: findings and what the model does."""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ltv.schema import CATEGORICAL_FIELDS, RAW_FIELDS, clean_category, clean_frame
from training.model import MIN_CATEGORY_COUNT

logger = logging.getLogger(__name__)

# A country is flagged when its median revenue per event_2 is this many
# orders of magnitude away from the median over countries.
RATE_OUTLIER_DECADES = 2.0
MIN_USERS_FOR_RATE = 5


_MISSING_ACTIONS = {
    "category": "a missing category is a category of its own",
    "os_version": "the parsed major and minor versions are NaN, which LightGBM "
    "routes down its learned missing-value branch",
    "event_3": "LightGBM sees NaN, and the exposure counts it as 0",
}


@dataclass
class Finding:
    check: str
    message: str
    action: str


def missing_values(raw: pd.DataFrame) -> list[Finding]:
    findings = []
    for name in RAW_FIELDS:
        column = raw[name]
        if column.dtype == object or pd.api.types.is_string_dtype(column):
            missing = int(column.fillna("").str.strip().eq("").sum())
        else:
            missing = int(column.isna().sum())
        if missing:
            findings.append(
                Finding(
                    "missing values",
                    f"{name}: {missing} of {len(raw)} rows "
                    f"({missing / len(raw):.1%}) are empty",
                    _MISSING_ACTIONS.get(name, _MISSING_ACTIONS["category"]),
                )
            )
    return findings


def case_and_space_variants(raw: pd.DataFrame) -> list[Finding]:
    findings = []
    for name in CATEGORICAL_FIELDS:
        values = raw[name].dropna().unique()
        groups: dict[str, list[str]] = {}
        for value in values:
            groups.setdefault(clean_category(value), []).append(value)
        variants = {key: sorted(v) for key, v in groups.items() if len(v) > 1}
        if variants:
            examples = "; ".join(
                " / ".join(repr(v) for v in group)
                for group in list(variants.values())[:3]
            )
            findings.append(
                Finding(
                    "letter case and spaces",
                    f"{name}: {len(variants)} values appear in several spellings "
                    f"({examples})",
                    "the schema folds letter case, spaces and Unicode forms, so "
                    "each group is one category",
                )
            )
    return findings


def rare_categories(features: pd.DataFrame) -> list[Finding]:
    findings = []
    for name in (*CATEGORICAL_FIELDS, "device_brand"):
        counts = features[name].value_counts()
        rare = counts[counts < MIN_CATEGORY_COUNT]
        if len(rare):
            findings.append(
                Finding(
                    "rare categories",
                    f"{name}: {len(rare)} of {len(counts)} values are seen fewer "
                    f"than {MIN_CATEGORY_COUNT} times ({int(rare.sum())} rows)",
                    "they share one infrequent category in the encoder",
                )
            )
    return findings


def country_rate_outliers(raw: pd.DataFrame, features: pd.DataFrame) -> list[Finding]:
    active = features["event_2"] > 0
    rate = raw.loc[active, "revenue"] / features.loc[active, "event_2"]
    by_country = rate.groupby(features.loc[active, "country"])
    medians = by_country.median()[by_country.size() >= MIN_USERS_FOR_RATE]
    medians = medians[medians > 0]
    if medians.empty:
        return []
    reference = float(np.median(medians))
    decades = np.log10(medians / reference)
    findings = []
    for country, distance in decades[decades.abs() >= RATE_OUTLIER_DECADES].items():
        findings.append(
            Finding(
                "revenue per event",
                f"country {country!r}: median revenue per event_2 is "
                f"{medians[country]:.4g}, 10^{distance:.1f} times the median "
                f"country's {reference:.4g}; this may be the real unit or a "
                "currency error upstream",
                "the model predicts a rate per country and platform and "
                "multiplies it by the event counts, so this country keeps its "
                "own scale; check the source before trusting its revenue",
            )
        )
    return findings


def check_data_quality(raw: pd.DataFrame) -> list[Finding]:
    """Return every finding and log each one as a warning."""
    features = clean_frame(raw)
    findings = [
        *missing_values(raw),
        *case_and_space_variants(raw),
        *rare_categories(features),
        *country_rate_outliers(raw, features),
    ]
    for finding in findings:
        logger.warning("data quality: %s: %s", finding.check, finding.message)
    return findings


def quality_markdown(findings: list[Finding]) -> str:
    lines = ["## Data quality", ""]
    if not findings:
        return "\n".join([*lines, "No findings.", ""])
    lines += ["| check | finding | what the model does |", "| --- | --- | --- |"]
    for finding in findings:
        message = finding.message.replace("|", "\\|")
        lines.append(f"| {finding.check} | {message} | {finding.action} |")
    return "\n".join([*lines, ""])
