"""Dataset readers: the real Toxic Spans and ConvAbuse files, and messy small files of our own."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from labeling.datasets import (
    AnnotatorLabel,
    DatasetError,
    ReadStats,
    majority_label,
    read_convabuse,
    read_table,
    read_toxic_spans,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_module_imports_without_django() -> None:
    code = "import sys, labeling.datasets; sys.exit('django' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, check=False)
    assert completed.returncode == 0, completed.stderr.decode()


class TestToxicSpansRealData:
    def test_limit_yields_first_comments_in_file_order(self, toxic_spans_dir: Path) -> None:
        with (toxic_spans_dir / "data_comments.csv").open(encoding="utf-8", newline="") as handle:
            first_ids = [row["comment_id"] for _, row in zip(range(20), csv.DictReader(handle), strict=False)]
        records = list(read_toxic_spans(toxic_spans_dir, limit=20))
        assert [r.external_id for r in records] == first_ids
        assert all(3 <= len(r.annotations) <= 7 for r in records)
        assert {a.label for r in records for a in r.annotations} <= {"toxic", "not_toxic"}
        assert records[0].metadata == {
            "dataset": "toxic-spans",
            "language": "en",
            "license": "CC0-1.0",
            "origin": "Civil Comments",
            "toxic_rule": "highlighted",
        }

    # Its speed (under 10 s) is measured by bench/agreement.py, not asserted here.
    @pytest.mark.slow
    def test_full_read_excludes_quiz_comment_and_keeps_spans_inside_text(self, toxic_spans_dir: Path) -> None:
        stats = ReadStats()
        records = list(read_toxic_spans(toxic_spans_dir, stats=stats))
        assert len(records) == stats.records == 16_099
        assert stats.excluded == ["6209917: quiz comment with 357 annotations"]
        assert "6209917" not in {r.external_id for r in records}
        for record in records:
            for annotation in record.annotations:
                for span in annotation.spans:
                    assert 0 <= span["start"] < span["end"] <= len(record.text)
                    assert span["label"] in {
                        "Insult",
                        "Threat",
                        "Identity based Attack",
                        "Profane/Obscene",
                        "Other Toxicity",
                        "Untyped",
                    }

    def test_reference_label_is_majority_of_workers(self, toxic_spans_dir: Path) -> None:
        for record in read_toxic_spans(toxic_spans_dir, limit=200):
            assert record.label == majority_label(record.annotations)


class TestToxicSpansMessyFiles:
    @pytest.fixture
    def root(self, tmp_path: Path) -> Path:
        write(
            tmp_path / "data_comments.csv",
            '\ufeffcomment_id,comment_text\n1,you are a clown\n2,"   "\n3,"nice, thanks"\n4,quiz text\n',
        )
        annotations = [
            "annotation,comment_id,worker,country,all toxic,not toxic",
            "10,1,w1,USA,False,False",
            "11,1,w2,VEN,True,True",
            "12,1,w3,USA,False,False",
            "13,3,w1,USA,False,True",
            "14,3,w2,USA,True,False",
            "15,2,w1,USA,False,True",
        ]
        annotations += [f"{100 + n},4,q{n},USA,False,False" for n in range(25)]
        write(tmp_path / "data_annotations.csv", "\n".join(annotations) + "\n")
        write(
            tmp_path / "data_spans.csv",
            "annotation,type,start,end\n"
            "10,Insu,10,15\n"  # truncated type
            "10,Insu,10,15\n"  # exact duplicate
            "12,,0,3\n"  # blank type
            "12,Identity based ,4,7\n"  # truncated with trailing space
            "12,Threat,x,9\n"  # unreadable offset
            "12,Insult,300,310\n"  # outside the text
            "14,Other Toxicity,5,3\n",
        )  # empty span
        return tmp_path

    def test_spans_are_cleaned_not_fatal(self, root: Path) -> None:
        stats = ReadStats()
        records = {r.external_id: r for r in read_toxic_spans(root, stats=stats)}
        first = records["1"].annotations
        assert first[0].spans == [{"start": 10, "end": 15, "label": "Insult"}]
        assert first[2].spans == [
            {"start": 0, "end": 3, "label": "Untyped"},
            {"start": 4, "end": 7, "label": "Identity based Attack"},
        ]
        # dropped: unreadable, outside, empty; cleaned: four repaired types and one merged duplicate
        assert (stats.spans_dropped, stats.spans_cleaned) == (3, 5)

    def test_worker_labels_follow_spans_and_flags(self, root: Path) -> None:
        records = {r.external_id: r for r in read_toxic_spans(root)}
        one = records["1"].annotations
        assert [a.label for a in one] == ["toxic", "not_toxic", "toxic"]
        assert one[1].extra["flags_conflict"] is True and one[1].extra["country"] == "VEN"
        three = records["3"].annotations
        # w2 highlighted a span with unusable offsets: still a "toxic" judgement, without spans.
        assert [(a.label, a.spans) for a in three] == [("not_toxic", []), ("toxic", [])]
        assert records["3"].label is None  # 1–1 tie
        assert records["1"].label == "toxic"

    def test_empty_text_skipped_and_outlier_excluded(self, root: Path) -> None:
        stats = ReadStats()
        ids = [r.external_id for r in read_toxic_spans(root, stats=stats)]
        assert ids == ["1", "3"]
        assert stats.skipped_empty == 1
        assert stats.excluded == ["4: quiz comment with 25 annotations"]

    def test_missing_column_names_it(self, root: Path) -> None:
        write(root / "data_spans.csv", "annotation,kind,start,end\n")
        with pytest.raises(DatasetError, match=r"data_spans.csv has no column 'type'; columns found: annotation"):
            list(read_toxic_spans(root))


class TestConvAbuseRealData:
    def test_examples_with_context_and_severity(self, convabuse_dir: Path) -> None:
        records = list(read_convabuse(convabuse_dir, limit=50))
        assert len(records) == 50
        first = records[0]
        assert first.text == "do you rember japan"
        assert first.context == [
            {"author": "E.L.I.Z.A.", "text": "Does that question interest you?"},
            {"author": "user", "text": "because my finger is happy"},
            {"author": "E.L.I.Z.A.", "text": "Why do you say your finger is happy?"},
        ]
        assert first.metadata["split"] in {"train", "valid", "test"}
        labels = {(a.label, a.severity) for r in records for a in r.annotations}
        assert labels <= {
            ("not_abusive", None),
            ("ambiguous", None),
            ("abusive", "mild"),
            ("abusive", "strong"),
            ("abusive", "very_strong"),
        }

    def test_repeat_annotations_kept_and_flagged(self, convabuse_dir: Path) -> None:
        first = next(read_convabuse(convabuse_dir, limit=1))
        annotators = [(a.annotator, a.extra.get("repeat", False)) for a in first.annotations]
        assert annotators.count(("Annotator1", False)) == 1
        assert annotators.count(("Annotator1", True)) == 1

    # Its speed (under 10 s) is measured by bench/agreement.py, not asserted here.
    @pytest.mark.slow
    def test_full_read_ids_are_unique_and_stable(self, convabuse_dir: Path) -> None:
        records = list(read_convabuse(convabuse_dir))
        ids = [r.external_id for r in records]
        assert len(records) == len(set(ids)) == 4185
        assert ids[:100] == [r.external_id for r in read_convabuse(convabuse_dir, limit=100)]
        abusive = [a for r in records for a in r.annotations if a.label == "abusive"]
        assert any(a.extra.get("types") for a in abusive) and any(a.extra.get("targets") for a in abusive)


class TestConvAbuseMessyFile:
    HEADER = (
        "example_no,annotator_id,conv_id,prev_agent,prev_user,agent,user,bot,is_abuse.1,is_abuse.0,"
        "is_abuse.-1,is_abuse.-2,is_abuse.-3,type.sexist,target.system,direction.explicit\n"
    )

    def test_empty_turns_skipped_bad_rows_dropped_and_majority_ignores_repeats(self, tmp_path: Path) -> None:
        write(
            tmp_path / "ConvAbuseEMNLPfull.csv",
            self.HEADER
            + "0,A1,7.0,,hi,Hello.,you are dumb,CarbonBot,0,0,1,0,0,1,1,1\n"
            + "1,A2,7.0,,hi,Hello.,you are dumb,CarbonBot,1,0,0,0,0,0,0,0\n"
            + "2,A2,7.0,,hi,Hello.,you are dumb,CarbonBot,1,0,0,0,0,0,0,0\n"
            + "3,A3,7.0,,hi,Hello.,you are dumb,CarbonBot,0,0,0,0,0,0,0,0\n"
            + "4,A1,8.0,,,,   ,CarbonBot,1,0,0,0,0,0,0,0\n",
        )
        stats = ReadStats()
        (record,) = read_convabuse(tmp_path, stats=stats)
        assert record.context == [{"author": "user", "text": "hi"}, {"author": "CarbonBot", "text": "Hello."}]
        assert record.external_id.startswith("7-")
        assert record.label is None  # A1 abusive vs A2 not abusive; A2's repeat does not vote
        assert record.annotations[0].extra == {
            "example_no": "0",
            "types": ["sexist"],
            "targets": ["system"],
            "directions": ["explicit"],
        }
        assert record.annotations[2].extra["repeat"] is True
        assert "split" not in record.metadata
        assert (stats.annotations_dropped, stats.skipped_empty) == (1, 1)


class TestReadTable:
    def test_csv_with_bom_row_number_ids_and_empty_text(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "comments.csv",
            '\ufefftext,label,id,language\n"hello, world",ok,a1,en\n"",bad,a2,en\nsecond,,,de\n',
        )
        stats = ReadStats()
        records = list(read_table(path, "csv", stats=stats))
        assert [(r.source, r.external_id, r.text, r.label) for r in records] == [
            ("comments", "a1", "hello, world", "ok"),
            ("comments", "2", "second", None),
        ]
        assert records[1].metadata == {"dataset": "comments", "row": 2, "language": "de"}
        assert stats.skipped_empty == 1

    def test_default_label_and_id_columns_are_optional(self, tmp_path: Path) -> None:
        path = write(tmp_path / "plain.csv", "body\nfirst\nsecond\n")
        records = list(read_table(path, "csv", text_col="body"))
        assert [(r.external_id, r.label) for r in records] == [("0", None), ("1", None)]

    def test_missing_text_column_names_column_and_columns_found(self, tmp_path: Path) -> None:
        path = write(tmp_path / "x.csv", "body,label\nhi,ok\n")
        with pytest.raises(DatasetError, match=r"x.csv has no column 'text'; columns found: body, label"):
            list(read_table(path, "csv"))

    def test_explicitly_named_label_column_must_exist(self, tmp_path: Path) -> None:
        path = write(tmp_path / "x.csv", "text,label\nhi,ok\n")
        with pytest.raises(DatasetError, match="no column 'verdict'"):
            list(read_table(path, "csv", label_col="verdict"))

    def test_jsonl_rows_with_numbers_blank_lines_and_limit(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "feed.jsonl",
            '{"id": 7, "text": "one", "label": true}\n\n{"text": "two", "label": null}\n{"text": "three"}\n',
        )
        records = list(read_table(path, "jsonl", limit=2))
        assert [(r.external_id, r.text, r.label) for r in records] == [("7", "one", "true"), ("1", "two", None)]

    def test_bad_json_line_reports_line_number(self, tmp_path: Path) -> None:
        path = write(tmp_path / "feed.jsonl", '{"text": "ok"}\n\n{"text": oops}\n')
        with pytest.raises(DatasetError, match=r"feed.jsonl, line 3: invalid JSON"):
            list(read_table(path, "jsonl"))

    def test_jsonl_line_that_is_not_an_object_is_rejected(self, tmp_path: Path) -> None:
        path = write(tmp_path / "feed.jsonl", '["text"]\n')
        with pytest.raises(DatasetError, match="line 1: expected a JSON object, got list"):
            list(read_table(path, "jsonl"))

    def test_jsonl_missing_text_field_names_fields_found(self, tmp_path: Path) -> None:
        path = write(tmp_path / "feed.jsonl", '{"body": "x", "id": 1}\n')
        with pytest.raises(DatasetError, match=r"line 1 has no field 'text'; fields found: body, id"):
            list(read_table(path, "jsonl"))

    def test_non_utf8_file_is_a_clear_error(self, tmp_path: Path) -> None:
        path = write(tmp_path / "latin.csv", "text\ncafé crème\n", encoding="latin-1")
        with pytest.raises(DatasetError, match="not valid UTF-8"):
            list(read_table(path, "csv"))

    def test_missing_file_and_negative_limit_are_errors(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetError, match="does not exist"):
            list(read_table(tmp_path / "nope.csv", "csv"))
        with pytest.raises(DatasetError, match="limit must be >= 0"):
            list(read_table(tmp_path / "nope.csv", "csv", limit=-1))


def test_majority_label_ties_and_repeats() -> None:
    def label(annotator: str, value: str) -> AnnotatorLabel:
        return AnnotatorLabel(annotator=annotator, label=value)

    assert majority_label([label("a", "x"), label("b", "y")]) is None
    assert majority_label([label("a", "x"), label("b", "y"), label("b", "y"), label("c", "x")]) == "x"
    assert majority_label([]) is None
