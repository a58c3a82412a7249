"""Agreement with the Snowplow referer-parser test table on the referrer part of `classify`.

Their medium maps to ours as: search -> organic, social -> social, email -> email,
chatbot -> ai, paid -> any paid medium (cpc, ppc, paid_*, display, cpm, ...). Their
"unknown" agrees with our referral, and their "internal" with our direct/none (a
self-referral); the current table has neither. Each referrer is classified on its own,
with no landing URL and no own domains. This is a measurement: the table is read as is,
never special-cased; a disagreement is fixed in the general tables or accepted.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from attribution.channels import classify

MINIMUM_AGREEMENT = 0.95
_PAID = re.compile(r".*cp.*|ppc|retargeting|paid.*|display|banner|interstitial|expandable")


def _table_path() -> Path:
    shared = os.environ.get("METRIVO_SHARED_DIR")
    base = Path(shared) if shared else Path(__file__).resolve().parents[3] / "shared"
    return base / "peer" / "snowplow-referer-tests.json"


def _agrees(theirs: str, ours: str) -> bool:
    if theirs == "paid":
        return _PAID.fullmatch(ours) is not None
    expected = {
        "search": "organic",
        "social": "social",
        "email": "email",
        "chatbot": "ai",
        "unknown": "referral",
        "internal": "none",
    }
    return expected.get(theirs) == ours


def test_agreement_with_snowplow_referer_parser() -> None:
    path = _table_path()
    if not path.is_file():
        pytest.skip(f"Snowplow table not found at {path} (set METRIVO_SHARED_DIR)")
    cases = json.loads(path.read_text(encoding="utf-8"))
    disagreements = []
    for case in cases:
        ours = classify(None, case["uri"])
        if not _agrees(case["medium"], ours.medium):
            disagreements.append(
                f"{case['spec']}: theirs {case['medium']}/{case['source']}, "
                f"ours {ours.medium}/{ours.source} ({case['uri'][:80]})"
            )
    agreed = len(cases) - len(disagreements)
    summary = f"Snowplow referer-parser agreement on medium: {agreed}/{len(cases)}"
    report = "\n".join([summary, *disagreements]) + "\n"
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "snowplow-agreement.txt").write_text(report, encoding="utf-8")
    print(report)
    assert len(cases) == 118
    assert agreed / len(cases) >= MINIMUM_AGREEMENT, report
