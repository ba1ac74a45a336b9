"""`make data` (tools/data.py): pinned sums, refusal of a wrong file, no second download.

No test reaches the internet: the "upstream" is a loopback http.server over files the test
writes, laid out like GitHub's /<owner>/<repo>/raw/<commit>/<path>.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import dataset_dir
from tools import data
from tools.data import ChecksumMismatch, DataFile, file_fetch

GOOD = b"comment_id,comment_text\n1,hello\n"


class Upstream:
    """A loopback HTTP server over `root`; `requests` lists the paths it was asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        upstream = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def publish(self, file: DataFile, content: bytes) -> None:
        target = self.root / file.repo / "raw" / file.commit / file.upstream_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    server = Upstream(tmp_path / "upstream")
    server.root.mkdir()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    thread.join()


def pinned(content: bytes, name: str = "data_comments.csv") -> DataFile:
    return DataFile("toxic-spans", name, "owner/repo", "abc1234", f"data/{name}", hashlib.sha256(content).hexdigest())


def test_pinned_sums_are_those_of_the_copies_ci_tests_against(shared_data: Path) -> None:
    for dataset in data.DATASETS:
        dataset_dir(dataset)  # skips, naming `make data`, when absent
    for file in data.FILES:
        assert data.sha256_of(shared_data / file.dataset / file.name) == file.sha256, file.name


def test_the_script_and_the_django_setting_find_the_same_folder() -> None:
    assert data.data_dir() == settings.REVIEWAPP_DATA_DIR


def test_it_installs_a_file_whose_sum_matches(upstream: Upstream, tmp_path: Path) -> None:
    file = pinned(GOOD)
    upstream.publish(file, GOOD)
    dest = tmp_path / "data"
    assert file_fetch(file=file, dest=dest, base_url=upstream.base_url) is True
    assert (dest / "toxic-spans" / "data_comments.csv").read_bytes() == GOOD
    assert upstream.requests == ["/owner/repo/raw/abc1234/data/data_comments.csv"]
    assert list((dest / "toxic-spans").iterdir()) == [dest / "toxic-spans" / "data_comments.csv"]


def test_a_file_already_present_with_the_right_sum_is_not_downloaded_again(upstream: Upstream, tmp_path: Path) -> None:
    file = pinned(GOOD)
    target = tmp_path / "data" / "toxic-spans" / "data_comments.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(GOOD)
    assert file_fetch(file=file, dest=tmp_path / "data", base_url=upstream.base_url) is False
    assert upstream.requests == []


def test_a_download_with_another_sum_is_refused_and_not_installed(upstream: Upstream, tmp_path: Path) -> None:
    file = pinned(GOOD)
    upstream.publish(file, GOOD + b"2,tampered\n")
    dest = tmp_path / "data"
    with pytest.raises(ChecksumMismatch, match="is not the pinned"):
        file_fetch(file=file, dest=dest, base_url=upstream.base_url)
    assert list((dest / "toxic-spans").iterdir()) == []  # neither the file nor its temporary copy


def test_a_present_file_with_a_wrong_sum_is_replaced_only_by_the_pinned_one(upstream: Upstream, tmp_path: Path) -> None:
    file = pinned(GOOD)
    target = tmp_path / "data" / "toxic-spans" / "data_comments.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    upstream.publish(file, b"also wrong")
    with pytest.raises(ChecksumMismatch):
        file_fetch(file=file, dest=tmp_path / "data", base_url=upstream.base_url)
    assert target.read_bytes() == b"truncated"
    upstream.publish(file, GOOD)
    assert file_fetch(file=file, dest=tmp_path / "data", base_url=upstream.base_url) is True
    assert target.read_bytes() == GOOD


def test_make_data_exits_non_zero_naming_the_refused_file(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = pinned(GOOD), pinned(b"spans", name="data_spans.csv")
    monkeypatch.setattr(data, "FILES", (good, bad))
    upstream.publish(good, GOOD)
    upstream.publish(bad, b"not the spans we pinned")
    dest = tmp_path / "data"
    assert data.main(["--dest", str(dest), "--base-url", upstream.base_url]) == 1
    out, err = capsys.readouterr()
    assert f"fetched {dest / 'toxic-spans' / 'data_comments.csv'}" in out
    assert "REFUSED" in err and "data_spans.csv was not installed" in err
    assert not (dest / "toxic-spans" / "data_spans.csv").exists()
    upstream.publish(bad, b"spans")
    assert data.main(["--dest", str(dest), "--base-url", upstream.base_url]) == 0
    assert f"present {dest / 'toxic-spans' / 'data_comments.csv'}" in capsys.readouterr().out


def test_an_unreachable_file_fails_the_run(upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "FILES", (pinned(GOOD),))  # never published: 404
    assert data.main(["--dest", str(tmp_path / "data"), "--base-url", upstream.base_url]) == 1
    assert not (tmp_path / "data" / "toxic-spans" / "data_comments.csv").exists()


def test_only_http_base_urls_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        data.main(["--dest", str(tmp_path), "--base-url", f"file://{tmp_path}"])
    assert exited.value.code == 2
