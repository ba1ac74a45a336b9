"""Reviewer reliability through the lead's path: real Toxic Spans crowd labels imported with
`import_dataset --as-annotations`, the reliability refresh the quality page's button enqueues,
then the quality page itself. A crowd model that failed its checks raises no flags, weighs no
votes, and the page says why."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from statsmodels.stats.proportion import proportion_confint

from labeling.models import Policy, ReliabilityFit, ReviewerReliability
from labeling.services.reliability import reliabilities_in_force, reliability_refresh
from tests.factories import UserFactory

# Slow tier: the import resolves consensus for 300 real items (about half a minute).
pytestmark = pytest.mark.slow

# The first 300 Toxic Spans comments: 1,070 first answers by 868 workers, 63 % of them "toxic";
# 46 workers gave 3 or more. On this subset the fit the project used before (smoothing 1) puts
# 99.5 % of the prior on "toxic" and labels every item toxic; with reviewers of 3+ labels kept,
# it marked 29 of those 46 below 70 % accuracy, each "accuracy" being that worker's toxic share.
LIMIT = 300
MIN_LABELS = 3


@pytest.fixture
def toxic_crowd(db, toxic_spans_dir: Path) -> Policy:  # type: ignore[no-untyped-def]
    call_command(
        "import_dataset", "toxic-spans", str(toxic_spans_dir), "--as-annotations", "--limit", str(LIMIT),
        stdout=io.StringIO(),
    )  # fmt: skip
    return Policy.objects.get(key="toxicity")


@pytest.fixture
def lead_client(db) -> Client:  # type: ignore[no-untyped-def]
    lead = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])  # type: ignore[attr-defined]
    client = Client()
    client.force_login(lead)
    return client


def flags_on_page(html: str) -> list[str]:
    """The non-empty cells of the reviewers table's Flags column."""
    return [cell for cell in re.findall(r'<td class="warn">(.*?)</td>', html, flags=re.S) if cell.strip()]


def test_a_collapsed_crowd_model_raises_no_flags_and_the_page_says_why(toxic_crowd: Policy, lead_client) -> None:
    # A fit that passes stores estimates first, so the failed fit must also withdraw them.
    assert reliability_refresh(policy=toxic_crowd, min_labels=MIN_LABELS) > 0
    assert ReviewerReliability.objects.filter(policy=toxic_crowd).exists()

    stored = reliability_refresh(policy=toxic_crowd, smoothing=1.0, min_labels=MIN_LABELS)

    fit = ReliabilityFit.objects.filter(policy=toxic_crowd).latest("created_at")
    print("\nToxic Spans first 300 comments, smoothing 1:", "; ".join(fit.problems))
    assert stored == 0 and not fit.passed
    assert not ReviewerReliability.objects.filter(policy=toxic_crowd).exists()
    assert not reliabilities_in_force(policy_id=toxic_crowd.pk).exists()  # no reliability weights in consensus
    html = lead_client.get("/lead/quality/", {"policy": "toxicity"}).content.decode()
    assert "Crowd model not used" in html
    assert "it labelled 100% of items toxic while 63% of votes are toxic" in html
    assert "their share of &#x27;toxic&#x27; labels" in html
    assert flags_on_page(html) == []


def test_a_crowd_model_that_passes_its_checks_is_used_and_says_so(toxic_crowd: Policy, lead_client) -> None:
    stored = reliability_refresh(policy=toxic_crowd, min_labels=MIN_LABELS)

    fit = ReliabilityFit.objects.filter(policy=toxic_crowd).latest("created_at")
    assert fit.passed and fit.converged and fit.problems == []
    toxic_prior = fit.priors[fit.labels.index("toxic")]
    assert 0.4 < toxic_prior < 0.7  # near the 63 % vote share, not the collapsed 1.0
    assert stored == reliabilities_in_force(policy_id=toxic_crowd.pk).count() == 46
    html = lead_client.get("/lead/quality/", {"policy": "toxicity"}).content.decode()
    assert "passed its checks" in html and "Crowd model not used" not in html
    estimates = ReviewerReliability.objects.filter(policy=toxic_crowd).values_list("accuracy", "n_items")
    below = [(accuracy, n) for accuracy, n in estimates if accuracy < 0.7]
    # A flag needs the whole 95 % interval below the bar, recomputed here with statsmodels.
    confident = [n for accuracy, n in below if proportion_confint(accuracy * n, n, method="wilson")[1] < 0.7]
    assert len(below) > len(confident)  # few labels each: most low estimates are not evidence
    assert len(flags_on_page(html)) == len(confident)  # flags come from this fit only
