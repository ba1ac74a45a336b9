"""Lead pages: adjudication in the browser, gold history, quality dashboards; reviewers kept out."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from labeling.models import Adjudication, GoldLabel
from labeling.services.annotations import annotation_submit
from reviewapp.services.claims import task_claim_next
from tests.factories import ContentItemFactory, PolicyFactory, ReviewTaskFactory, UserFactory
from tests.visible_text import visible_text


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


@pytest.fixture
def lead_client(db) -> Client:  # type: ignore[no-untyped-def]
    lead = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(lead)
    return client


@pytest.fixture
def disputed(policy, queue):  # type: ignore[no-untyped-def]
    queue.required_annotations = 2
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="<b>contested</b> words"))
    for labels, rationale in ((["violating"], "targets a person"), (["not_violating"], "<script>x</script>")):
        reviewer = UserFactory()
        task_claim_next(reviewer=reviewer, queue=queue)
        annotation_submit(
            task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels, rationale=rationale
        )
    return Adjudication.objects.get(task=task)


def test_lead_sees_disagreement_with_answers_side_by_side(lead_client, disputed) -> None:
    listing = lead_client.get("/lead/adjudications/").content.decode()
    assert f"/lead/adjudications/{disputed.pk}/" in listing and "Reviewers disagreed" in listing
    html = lead_client.get(f"/lead/adjudications/{disputed.pk}/").content.decode()
    assert "targets a person" in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "&lt;b&gt;contested&lt;/b&gt;" in html
    assert html.count('name="labels"') == 2


def test_lead_decides_in_the_browser(lead_client, disputed) -> None:
    response = lead_client.post(f"/lead/adjudications/{disputed.pk}/decide", {"labels": "violating", "note": "ok"})
    assert response.status_code == 302
    gold = GoldLabel.objects.get()
    assert gold.labels == ["violating"] and gold.adjudicator.username == "lead" and gold.n_annotations == 2
    history = lead_client.get(f"/lead/gold/{gold.item_id}/{gold.policy_id}/").content.decode()
    assert "v1" in history and "Lead adjudication" in history
    assert "<td>Violating</td>" in history and ">violating<" not in history  # the label by its name


def test_decision_without_label_is_400_with_message(lead_client, disputed) -> None:
    response = lead_client.post(f"/lead/adjudications/{disputed.pk}/decide", {"note": "?"})
    assert response.status_code == 400 and "Choose a label" in response.content.decode()


def test_send_back_from_the_browser(lead_client, disputed) -> None:
    lead_client.post(f"/lead/adjudications/{disputed.pk}/send-back", {"note": "look at the context"})
    disputed.refresh_from_db()
    assert disputed.status == "sent_back"


def test_reviewer_cannot_open_lead_pages(policy, queue) -> None:
    client = Client()
    client.force_login(UserFactory(username="rev"))
    for url in ("/lead/adjudications/", "/lead/quality/"):
        assert client.get(url).status_code == 403


def test_quality_page_shows_agreement_and_reviewer_stats(lead_client, policy, queue) -> None:
    queue.required_annotations = 3
    queue.save()
    reviewers = [UserFactory(username=f"q{i}") for i in range(3)]
    for n in range(6):
        task = ReviewTaskFactory(policy=policy, queue=queue)
        for i, reviewer in enumerate(reviewers):
            assert task_claim_next(reviewer=reviewer, queue=queue).task.pk == task.pk
            label = "violating" if (n + (i == 2 and n % 2)) % 2 == 0 else "not_violating"
            annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[label])
    html = lead_client.get(f"/lead/quality/?policy={policy.key}").content.decode()
    assert "Krippendorff" in html and "<svg" in html
    assert re.search(r"6 items with two or more independent answers", html)
    assert all(r.username in html for r in reviewers)


def _answer(policy, queue, reviewers, labels_per_item) -> None:  # type: ignore[no-untyped-def]
    queue.required_annotations = len(reviewers)
    queue.save()
    for labels in labels_per_item:
        task = ReviewTaskFactory(policy=policy, queue=queue)
        for reviewer, label in zip(reviewers, labels, strict=True):
            assert task_claim_next(reviewer=reviewer, queue=queue).task.pk == task.pk
            annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[label])


def test_quality_page_says_one_item_is_too_few_and_shows_no_interval(lead_client, policy, queue) -> None:
    _answer(policy, queue, [UserFactory(username="pair-a"), UserFactory(username="pair-b")], [("violating",) * 2])
    html = lead_client.get(f"/lead/quality/?policy={policy.key}").content.decode()
    caveat = re.search(r'<p class="warn" id="agreement-caveat"[^>]*>(.*?)</p>', html, re.S)
    assert caveat and caveat.group(1).startswith("n = 1 item: too few to estimate agreement.")
    assert "1 item with two or more independent answers" in html
    assert "bootstrap resamples of items" not in html.split('id="scale-agreement"')[0]
    table = html.split('id="agreement-h"')[1].split("</table>")[0]
    assert table.count("too few items") == 3 and " – " not in table  # no interval on any statistic
    assert "too few for an interval" in html  # the chart says so too


def test_quality_page_names_reviewer_pairs_and_gives_intervals_when_enough(lead_client, policy, queue) -> None:
    first, second = UserFactory(username="pair-a"), UserFactory(username="pair-b")
    labels = [("violating", "violating") if n % 3 else ("violating", "not_violating") for n in range(20)]
    _answer(policy, queue, [first, second], labels)
    html = lead_client.get(f"/lead/quality/?policy={policy.key}").content.decode()
    assert 'id="agreement-caveat"' not in html and "95 % intervals from 500 bootstrap resamples" in html
    pairs = html.split('id="pairs-h"')[1].split("</table>")[0]
    assert "<td>pair-a · pair-b</td>" in pairs or "<td>pair-b · pair-a</td>" in pairs
    assert f"{first.pk} · {second.pk}" not in html and f"{second.pk} · {first.pk}" not in html


@pytest.mark.parametrize(
    ("ids", "status", "message"),
    [
        (["0"], 400, "is not an adjudication id"),
        (["²"], 400, "is not an adjudication id"),  # str.isdigit() says True; int() refuses it
        (["١٢"], 400, "is not an adjudication id"),  # Arabic-Indic digits, which int() would accept
        (["12345678901234567890123"], 400, "is not an adjudication id"),  # 23 digits: beyond bigint
        (["9223372036854775808"], 400, "is not an adjudication id"),  # bigint max + 1
        (["-1"], 400, "is not an adjudication id"),
        (["1" * 5000], 400, "is not an adjudication id"),  # past int()'s 4300-digit limit
        (["9223372036854775807"], 404, "No adjudication has the id 9223372036854775807"),
        (["424242"], 404, "No adjudication has the id 424242"),
    ],
)
def test_bulk_confirm_refuses_bad_or_unknown_ids_with_a_message(
    lead_client, disputed, ids: list[str], status: int, message: str
) -> None:
    response = lead_client.post("/lead/adjudications/confirm", {"ids": [str(disputed.pk), *ids]})
    assert response.status_code == status
    assert message in response.content.decode()
    disputed.refresh_from_db()
    assert disputed.status == "open" and not GoldLabel.objects.exists()


def test_bulk_confirm_makes_gold_from_agreed_ids(lead_client, policy, queue) -> None:
    queue.required_annotations = 1
    queue.auto_gold = False
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue)
    reviewer = UserFactory()
    task_claim_next(reviewer=reviewer, queue=queue)
    annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["violating"])
    agreed = Adjudication.objects.get(task=task)
    response = lead_client.post("/lead/adjudications/confirm", {"ids": [str(agreed.pk), str(agreed.pk)]})
    assert response.status_code == 302
    assert GoldLabel.objects.get().labels == ["violating"]
    listing = lead_client.get(response["Location"]).content.decode()
    assert "Confirmed 1 agreed items as gold; 0 left for a decision." in listing


def test_a_tie_preselects_nothing_and_a_clear_proposal_stays_selected(lead_client, disputed, policy, queue) -> None:
    tied = lead_client.get(f"/lead/adjudications/{disputed.pk}/").content.decode()
    assert disputed.proposed_labels and " checked" not in tied and "No label is pre-selected" in tied
    queue.required_annotations, queue.auto_gold = 2, False  # agreement asks a lead to confirm
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue)
    for _ in range(2):
        reviewer = UserFactory()
        task_claim_next(reviewer=reviewer, queue=queue)
        annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["violating"])
    confirm = Adjudication.objects.get(task=task)
    html = lead_client.get(f"/lead/adjudications/{confirm.pk}/").content.decode()
    assert re.search(r'value="violating" data-key="1" checked', html) and "No label is pre-selected" not in html
    listing = lead_client.get("/lead/adjudications/").content.decode()
    rows = {
        pk: re.search(rf'/lead/adjudications/{pk}/".*?</tr>', listing, re.S).group(0)
        for pk in (disputed.pk, confirm.pk)
    }  # type: ignore[union-attr]
    assert "<td>Violating</td>" in rows[confirm.pk] and "<td>—</td>" in rows[disputed.pk]


def test_adjudication_pages_show_label_names_not_keys(lead_client, disputed) -> None:
    lead_client.post(f"/lead/adjudications/{disputed.pk}/decide", {"labels": "not_violating"})
    html = lead_client.get(f"/lead/adjudications/{disputed.pk}/").content.decode()
    answers = re.search(r"<caption>Reviewers' answers</caption>.*?</table>", html, re.S).group(0)  # type: ignore[union-attr]
    assert "<td>Violating</td>" in answers and "<td>Not violating</td>" in answers and "not_violating" not in answers
    assert "v1: Not violating (" in html  # the gold history


def test_adjudication_page_names_labels_and_severities_never_by_key(lead_client, queue) -> None:
    schema = {
        "labels": [{"value": "hate_speech", "title": "Hate speech"}, {"value": "not_hateful"}],
        "allow_multiple": False,
        "severity_levels": ["mild", "very_strong"],
    }
    policy = PolicyFactory(key="hate", version__label_schema=schema)
    queue.required_annotations = 2
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue)
    for labels, severity in ((["hate_speech"], "very_strong"), (["not_hateful"], "")):
        reviewer = UserFactory()
        task_claim_next(reviewer=reviewer, queue=queue)
        annotation_submit(
            task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels, severity=severity
        )
    adjudication = Adjudication.objects.get(task=task)
    html = lead_client.get(f"/lead/adjudications/{adjudication.pk}/").content.decode()
    text = visible_text(html.split("<main", 1)[1])
    assert "Hate speech" in text and "Not hateful" in text and "Very strong" in text and "Mild" in text
    for key in ("hate_speech", "not_hateful", "very_strong"):
        assert key not in text, key
    assert '<option value="very_strong">Very strong</option>' in html  # the key stays where the form needs it
