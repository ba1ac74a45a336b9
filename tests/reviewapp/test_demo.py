"""The synthetic demo corpus and `manage.py seed_demo`."""

from __future__ import annotations

import io
import re
import stat
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from activelearning.models import TrainingRun
from labeling.exports.models import Dataset, DatasetSnapshot
from labeling.models import Adjudication, Annotation, Appeal, GoldLabel, Policy, PolicyVersion, check_label_schema
from reviewapp.audit import SYSTEM
from reviewapp.demo.corpus import demo_decision_rows, demo_policies, demo_queues
from reviewapp.demo.media import MEDIA_FILES, STATIC_SUBDIR, generated_files
from reviewapp.demo.real_data import CONVABUSE_SHA256, demo_data_find
from reviewapp.models import (
    AuditEvent,
    ContentItem,
    ModelDecision,
    Queue,
    ReviewTask,
    RoutingOutcome,
    RoutingRule,
    ServiceToken,
)
from reviewapp.services.tokens import token_create
from reviewapp.services.validation import check_decision_row
from tools.data import FILES


class TestDemoRows:
    @pytest.mark.parametrize("seed", [7, 8, 123])
    def test_every_demo_row_passes_ingest_validation(self, seed: int) -> None:
        for row in demo_decision_rows(seed=seed):
            check_decision_row(row)

    def test_rows_are_deterministic_per_seed(self) -> None:
        assert demo_decision_rows(n=50) == demo_decision_rows(n=50)
        assert demo_decision_rows(n=50, seed=1) != demo_decision_rows(n=50, seed=2)

    def test_rows_cover_modalities_languages_models_and_the_score_range(self) -> None:
        rows = demo_decision_rows()
        assert len({row["external_id"] for row in rows}) == 600
        assert {row["modality"] for row in rows} == {"text", "image", "video", "audio", "mixed"}
        assert {row["metadata"]["language"] for row in rows} == {"en", "es", "de", "fr", "pt"}
        assert {row["policy"] for row in rows} == {policy.key for policy in demo_policies()}
        assert len({(row["model_name"], row["model_version"]) for row in rows}) == 3
        scores = [row["score"] for row in rows]
        assert min(scores) < 0.05 and max(scores) > 0.97
        assert sum(1 for row in rows if row.get("context")) >= 30
        reach = sorted(row["reach"] for row in rows)
        assert reach[len(reach) // 2] < 100 < 10_000 < reach[-1]  # heavy-tailed

    def test_media_are_the_demo_files_on_the_apps_own_static_host(self) -> None:
        urls = [url for row in demo_decision_rows() for url in row.get("media_urls", [])]
        static_root = Path(__file__).resolve().parents[2] / "static"
        assert urls and all(url.startswith("/static/reviewapp/demo/") for url in urls)
        assert {url.rsplit("/", 1)[1] for url in urls} == {name for names in MEDIA_FILES.values() for name in names}
        for url in set(urls):
            assert (static_root / url.removeprefix("/static/")).is_file()

    def test_the_demo_media_files_are_small_and_regenerate_byte_for_byte(self) -> None:
        folder = Path(__file__).resolve().parents[2] / "static" / STATIC_SUBDIR
        for name, data in generated_files().items():
            assert (folder / name).read_bytes() == data
        assert sum(path.stat().st_size for path in folder.iterdir()) < 200_000

    def test_evidence_spans_cite_parts_of_the_text(self) -> None:
        rows = [row for row in demo_decision_rows() if row.get("evidence_spans")]
        assert len(rows) >= 30
        for row in rows:
            for span in row["evidence_spans"]:
                assert row["text"][span["start"] : span["end"]].strip()


class TestDemoSpecs:
    def test_policies_have_valid_schemas_and_ordered_thresholds(self) -> None:
        policies = demo_policies()
        assert {"harassment", "hate", "violent_threat", "spam", "self_harm", "sexual_content"} <= {
            p.key for p in policies
        }
        queues = {q.slug for q in demo_queues()}
        for policy in policies:
            check_label_schema(policy.label_schema)
            assert 2 <= len(policy.label_schema["labels"]) <= 4 and policy.label_schema["severity_levels"]
            assert {policy.violating_label, policy.benign_label} <= {
                label["value"] for label in policy.label_schema["labels"]
            }
            assert policy.guideline.count("\n\n") >= 2 and "**Not" in policy.guideline
            if policy.auto_clear is not None and policy.auto_action is not None:
                assert policy.auto_clear < policy.auto_action
            assert {policy.queue, policy.audit_queue} <= queues

    def test_queues_mix_kinds_required_annotations_and_blind_review(self) -> None:
        queues = demo_queues()
        assert {q.kind for q in queues} == {"review", "audit", "adjudication", "appeals"}
        assert {q.required_annotations for q in queues} >= {1, 2, 3}
        assert any(q.blind_review for q in queues)


class TestDemoDataFind:
    def test_the_demo_checks_convabuse_against_the_sum_make_data_pins(self) -> None:
        pinned = next(f for f in FILES if f.dataset == "convabuse" and f.name == "ConvAbuseEMNLPfull.csv")
        assert pinned.sha256 == CONVABUSE_SHA256

    def test_absent_or_altered_convabuse_is_not_used_and_the_reason_says_why(self, tmp_path: Path) -> None:
        absent = demo_data_find(data_dir=tmp_path)
        assert absent.folder is None and "no convabuse/ConvAbuseEMNLPfull.csv in" in absent.reason
        (tmp_path / "convabuse").mkdir()
        (tmp_path / "convabuse" / "ConvAbuseEMNLPfull.csv").write_text("conv_id,user\n1,hi\n", encoding="utf-8")
        altered = demo_data_find(data_dir=tmp_path)
        assert altered.folder is None and "is not the pinned copy" in altered.reason

    def test_the_pinned_copy_is_used(self, convabuse_dir: Path) -> None:
        found = demo_data_find(data_dir=convabuse_dir.parent)
        assert found.folder == convabuse_dir and "pinned sha256" in found.reason


@pytest.fixture
def logins_file(tmp_path: Path) -> Path:
    return tmp_path / "run" / "demo-logins.txt"


@pytest.fixture
def no_public_data(settings, tmp_path: Path) -> Path:
    """REVIEWAPP_DATA_DIR pointed at an empty folder (restored after the test): the simulated path."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    settings.REVIEWAPP_DATA_DIR = empty
    return empty


def seed(logins_file: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--logins-file", str(logins_file), *args, stdout=out)
    return out.getvalue()


def db_counts() -> dict[str, int]:
    models = [
        Annotation,
        GoldLabel,
        Adjudication,
        Appeal,
        Dataset,
        DatasetSnapshot,
        TrainingRun,
        User,
        Policy,
        PolicyVersion,
        Queue,
        RoutingRule,
        ServiceToken,
        ContentItem,
        ModelDecision,
        ReviewTask,
        AuditEvent,
    ]
    return {model.__name__: model._default_manager.count() for model in models}


@pytest.mark.django_db
@pytest.mark.usefixtures("no_public_data")
class TestSeedDemo:
    """Without the public data (REVIEWAPP_DATA_DIR empty); tests/reviewapp/test_demo_real_data.py has it."""

    def test_seed_demo_twice_is_idempotent(self, logins_file: Path, no_public_data: Path) -> None:
        first = seed(logins_file)
        after_first = db_counts()
        second = seed(logins_file)
        assert db_counts() == after_first
        assert re.search(r"ingested \d{3} demo decisions", first)
        why = f"leads' pages: simulated demo annotators (no convabuse/ConvAbuseEMNLPfull.csv in {no_public_data}"
        assert why in first and why in second
        assert not ContentItem.objects.filter(source="convabuse").exists()
        assert "nothing new" in second
        assert f"their logins are in {logins_file}" in second
        assert "rva_" not in second  # no secret printed again

    def test_after_seed_demo_tasks_are_open_in_several_queues_and_both_auto_outcomes_exist(
        self, logins_file: Path
    ) -> None:
        seed(logins_file)
        queues_with_tasks = set(ReviewTask.objects.filter(status="open").values_list("queue__slug", flat=True))
        assert {"harassment-hate", "threats", "spam", "self-harm", "sexual-content"} <= queues_with_tasks
        assert "automation-audit" in queues_with_tasks
        outcomes = set(ModelDecision.objects.values_list("routing_outcome", flat=True))
        assert outcomes == {RoutingOutcome.AUTO_ACTION, RoutingOutcome.AUTO_CLEAR, RoutingOutcome.REVIEW}

    def test_users_groups_memberships_and_token(self, logins_file: Path) -> None:
        seed(logins_file)
        admin, lead, reviewer = (User.objects.get(username=name) for name in ("admin", "lead", "reviewer"))
        assert admin.is_superuser and admin.is_staff
        assert lead.is_staff and not lead.is_superuser
        assert not reviewer.is_staff
        assert set(reviewer.groups.values_list("name", flat=True)) == {"reviewer"}
        assert set(lead.groups.values_list("name", flat=True)) == {"policy_lead"}
        assert "escalations" not in set(reviewer.review_queues.values_list("slug", flat=True))
        assert {"escalations", "harassment-hate"} <= set(lead.review_queues.values_list("slug", flat=True))
        assert ServiceToken.objects.get(name="demo-upstream").scopes == ["appeals:write", "decisions:write"]
        assert "appeals" in set(reviewer.review_queues.values_list("slug", flat=True))
        version = Policy.objects.get(key="hate").current_version()
        assert version is not None and version.number == 1

    def test_a_demo_token_from_an_earlier_seed_gains_the_appeals_scope_and_keeps_its_secret(
        self, logins_file: Path
    ) -> None:
        token, secret = token_create(name="demo-upstream", scopes=["decisions:write"], actor=SYSTEM)
        output = seed(logins_file)
        token.refresh_from_db()
        assert token.scopes == ["appeals:write", "decisions:write"] and "token demo-upstream" not in output
        assert token.key_hash == ServiceToken.hash_secret(secret)
        event = AuditEvent.objects.get(action="token.scopes_added")
        assert (event.before, event.after) == (
            {"scopes": ["decisions:write"]},
            {"scopes": ["appeals:write", "decisions:write"]},
        )

    def test_logins_are_printed_once_and_saved_privately(self, logins_file: Path) -> None:
        output = seed(logins_file)
        saved = logins_file.read_text()
        assert stat.S_IMODE(logins_file.stat().st_mode) == 0o600
        for username in ("reviewer", "reviewer2", "lead", "admin"):
            line = next(line for line in saved.splitlines() if line.startswith(f"user {username}: "))
            password = line.split(": ", 1)[1]
            assert password in output
            assert User.objects.get(username=username).check_password(password)
        secret = next(line for line in saved.splitlines() if line.startswith("token demo-upstream: ")).split(": ")[1]
        assert secret in output
        assert ServiceToken.objects.filter(key_hash=ServiceToken.hash_secret(secret)).exists()

    def test_seed_demo_with_data_imports_that_dataset(
        self, logins_file: Path, tmp_path: Path, current_labels: Callable[[str], list[str]]
    ) -> None:
        data = tmp_path / "forum_posts.csv"
        data.write_text("id,text,label\np1,hello there,ok\np2,buy followers now,spam\n", encoding="utf-8")
        output = seed(logins_file, "--data", str(data))
        assert "items: 2 created" in output
        assert ModelDecision.objects.count() == 0  # the synthetic corpus is not loaded
        assert ReviewTask.objects.filter(queue__slug="forum_posts-review", reason="backfill").count() == 2
        labels = current_labels("forum_posts")
        assert labels == ["ok", "spam"]

    def test_seed_demo_with_unrecognised_data_path_fails_before_creating_anything(
        self, logins_file: Path, tmp_path: Path
    ) -> None:
        notes = tmp_path / "notes.txt"
        notes.write_text("hello\n", encoding="utf-8")
        with pytest.raises(CommandError, match=r"cannot tell the format .*pass --format"):
            seed(logins_file, "--data", str(notes))
        assert not User.objects.exists()


def test_demo_items_have_authors_and_a_few_accounts_repeat_violations() -> None:
    rows = demo_decision_rows()
    assert all(row["author"].startswith("acct-") for row in rows)
    high = Counter(row["author"] for row in rows if row["score"] >= 0.8)
    assert high.most_common(1)[0][1] >= 5  # case history has repeat offenders to show
    authors_per_item: dict[tuple[str, str], set[str]] = {}
    for row in rows:  # an item's second model's row names the same author
        authors_per_item.setdefault((row["source"], row["external_id"]), set()).add(row["author"])
    assert {len(authors) for authors in authors_per_item.values()} == {1}
