"""Management commands: import_dataset and create_service_token."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling.models import Policy
from reviewapp.models import AuditEvent, ContentItem, Queue, ReviewTask, ServiceToken
from tests.factories import UserFactory


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
class TestImportDataset:
    @pytest.mark.slow
    def test_toxic_spans_with_limit_creates_policy_queue_items_and_tasks(
        self, toxic_spans_dir: Path, current_labels: Callable[[str], list[str]]
    ) -> None:
        output = run("import_dataset", "toxic-spans", str(toxic_spans_dir), "--limit", "25")
        assert "created policy toxicity" in output and "created queue toxicity-review" in output
        assert "items: 25 created, 0 already present; tasks: 25 created; invalid: 0" in output
        policy = Policy.objects.get(key="toxicity")
        assert current_labels(policy.key) == ["toxic", "not_toxic"]
        assert ReviewTask.objects.filter(queue__slug="toxicity-review", policy=policy, reason="backfill").count() == 25
        assert ContentItem.objects.filter(source="toxic-spans").count() == 25

    @pytest.mark.slow
    def test_reimport_creates_nothing(self, toxic_spans_dir: Path) -> None:
        run("import_dataset", "toxic-spans", str(toxic_spans_dir), "--limit", "10")
        events = AuditEvent.objects.count()
        output = run("import_dataset", "toxic-spans", str(toxic_spans_dir), "--limit", "10")
        assert "items: 0 created, 10 already present; tasks: 0 created" in output
        assert "nothing new" in output
        assert AuditEvent.objects.count() == events

    @pytest.mark.slow
    def test_convabuse_into_a_named_policy_and_queue(
        self, convabuse_dir: Path, current_labels: Callable[[str], list[str]]
    ) -> None:
        output = run(
            "import_dataset",
            "convabuse",
            str(convabuse_dir),
            "--limit",
            "15",
            "--policy",
            "bot-abuse",
            "--queue",
            "bot-abuse-triage",
        )
        assert "items: 15 created" in output
        assert current_labels("bot-abuse") == [
            "abusive",
            "ambiguous",
            "not_abusive",
        ]
        assert ReviewTask.objects.filter(queue__slug="bot-abuse-triage").count() == 15
        item = ContentItem.objects.filter(source="convabuse").first()
        assert item is not None and item.context and item.metadata["license"] == "CC-BY-4.0"

    def test_existing_policy_and_queue_are_used_as_they_are(self, toxic_spans_dir: Path, policy, queue) -> None:
        output = run(
            "import_dataset",
            "toxic-spans",
            str(toxic_spans_dir),
            "--limit",
            "3",
            "--policy",
            policy.key,
            "--queue",
            queue.slug,
        )
        assert "created" not in output.split("read")[0]
        assert policy.versions.count() == 1
        assert ReviewTask.objects.filter(queue=queue, policy=policy).count() == 3

    def test_csv_with_custom_columns(self, tmp_path: Path, current_labels: Callable[[str], list[str]]) -> None:
        data = tmp_path / "tickets.csv"
        data.write_text("ticket,body,verdict\nT1,hello,fine\nT2,,fine\nT3,spam spam,bad\n", encoding="utf-8")
        output = run(
            "import_dataset", "csv", str(data), "--text-col", "body", "--label-col", "verdict", "--id-col", "ticket"
        )
        assert "skipped 1 with empty text" in output and "items: 2 created" in output
        assert set(ContentItem.objects.values_list("source", "external_id")) == {("tickets", "T1"), ("tickets", "T3")}
        assert ContentItem.objects.get(external_id="T3").metadata["source_label"] == "bad"
        assert current_labels("tickets") == ["bad", "fine"]

    def test_jsonl_import(self, tmp_path: Path) -> None:
        data = tmp_path / "feed.jsonl"
        data.write_text('{"id": "a", "text": "hi"}\n{"id": "b", "text": "yo"}\n', encoding="utf-8")
        output = run("import_dataset", "jsonl", str(data), "--policy", "toxicity")
        assert "items: 2 created" in output
        assert Queue.objects.filter(slug="toxicity-review").exists()

    def test_missing_path_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(CommandError, match=r"nowhere does not exist"):
            run("import_dataset", "toxic-spans", str(tmp_path / "nowhere"))

    def test_unknown_format_is_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(CommandError, match="invalid choice: 'xml'"):
            run("import_dataset", "xml", str(tmp_path))

    def test_missing_text_column_names_the_columns_found(self, tmp_path: Path) -> None:
        data = tmp_path / "x.csv"
        data.write_text("body,label\nhi,ok\n", encoding="utf-8")
        with pytest.raises(CommandError, match=r"no column 'text'; columns found: body, label"):
            run("import_dataset", "csv", str(data))
        assert not Policy.objects.exists()  # nothing is created for unreadable input

    def test_bad_json_line_is_reported_with_its_number(self, tmp_path: Path) -> None:
        data = tmp_path / "x.jsonl"
        data.write_text('{"text": "fine"}\n{"text": \n', encoding="utf-8")
        with pytest.raises(CommandError, match="line 2: invalid JSON"):
            run("import_dataset", "jsonl", str(data))

    def test_folder_format_given_a_file_is_rejected(self, tmp_path: Path) -> None:
        data = tmp_path / "x.csv"
        data.write_text("text\nhi\n", encoding="utf-8")
        with pytest.raises(CommandError, match="expects the dataset folder"):
            run("import_dataset", "convabuse", str(data))

    def test_folder_without_the_dataset_files_is_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(CommandError, match=r"ConvAbuseEMNLPfull\.csv does not exist"):
            run("import_dataset", "convabuse", str(tmp_path))

    def test_policy_key_must_be_a_slug(self, tmp_path: Path) -> None:
        data = tmp_path / "x.csv"
        data.write_text("text\nhi\n", encoding="utf-8")
        with pytest.raises(CommandError, match="slug"):
            run("import_dataset", "csv", str(data), "--policy", "not a slug")

    def test_negative_limit_is_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(CommandError, match="--limit"):
            run("import_dataset", "csv", str(tmp_path), "--limit", "-1")


@pytest.mark.django_db
class TestCreateServiceToken:
    def test_prints_the_secret_once_and_stores_only_its_hash(self) -> None:
        output = run(
            "create_service_token", "--name", "moderation-bot", "--scope", "decisions:write", "--scope", "export:read"
        )
        secret = output.strip().splitlines()[-1]
        assert secret.startswith("rva_")
        token = ServiceToken.objects.get(name="moderation-bot")
        assert token.key_hash == ServiceToken.hash_secret(secret)
        assert token.scopes == ["decisions:write", "export:read"]
        assert token.user is None
        assert AuditEvent.objects.filter(action="token.created", object_id=str(token.pk)).exists()

    def test_token_for_a_user(self) -> None:
        user = UserFactory(username="ml-engineer")
        run("create_service_token", "--name", "exporter", "--scope", "export:read", "--user", "ml-engineer")
        assert ServiceToken.objects.get(name="exporter").user == user

    def test_unknown_scope_is_rejected(self) -> None:
        with pytest.raises(CommandError, match="unknown scope"):
            run("create_service_token", "--name", "x", "--scope", "everything")
        assert not ServiceToken.objects.exists()

    def test_unknown_user_is_rejected(self) -> None:
        with pytest.raises(CommandError, match="no user named 'ghost'"):
            run("create_service_token", "--name", "x", "--scope", "export:read", "--user", "ghost")

    def test_duplicate_name_is_rejected(self) -> None:
        run("create_service_token", "--name", "x", "--scope", "export:read")
        with pytest.raises(CommandError, match="already exists"):
            run("create_service_token", "--name", "x", "--scope", "export:read")
