"""OpenAPI examples for the dataset API."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample

_HASH = "3f0a9c5e1b7d4a2f8e6c0b9d1a3e5f7c9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a"
_FILTERS = {
    "policies": ["hate"],
    "languages": ["en"],
    "routes": [],
    "label_sources": ["adjudication", "consensus"],
    "date_from": "2026-01-01",
    "date_to": None,
}
_SPLIT_DEFINITION = {
    "bucket": "sha256('<salt>:<group key>'), first 15 hex digits as an integer mod 100: train below "
    "train_percent, dev below train_percent + dev_percent, else test",
    "salt": "9b1f0c7e2a4d6f8e0c1b3a5d7f9e2c4b",
    "group_by": "content",
    "content_key_version": "text-nfkc-shingle5-jaccard0.7-minhash128x32-v1",
    "near_duplicate_jaccard": 0.7,
    "train_percent": 80,
    "dev_percent": 10,
    "test_percent": 10,
    "held_out_leaks": "excluded",
}
_DATASET = {
    "slug": "hate-speech-en",
    "name": "Hate speech (English)",
    "description": "Adjudicated and consensus gold for the hate policy, English only.",
    "filters": _FILTERS,
    "group_by": "content",
    "split_salt": _SPLIT_DEFINITION["salt"],
    "train_percent": 80,
    "dev_percent": 10,
    "test_percent": 10,
    "split_definition": _SPLIT_DEFINITION,
    "redact_pii_default": True,
    "latest_version": 3,
    "versions_url": "/api/v1/datasets/hate-speech-en/versions/",
    "created_by": "token:ml-platform",
    "created_at": "2026-11-02T09:14:03.120000Z",
}
_VERSION = {
    "dataset": "hate-speech-en",
    "version": 3,
    "row_count": 120000,
    "content_hash": _HASH,
    "filters": _FILTERS,
    "split_definition": _SPLIT_DEFINITION,
    "splits": {"dev": 12010, "test": 11985, "train": 96005},
    "held_out_excluded": {"dev": 3, "test": 5},
    "class_balance": {"train": {"hate:not_violating": 70110, "hate:violating": 25895}},
    "label_sources": {"train": {"adjudication": 20410, "consensus": 75595}},
    "previous_version": 2,
    "diff_previous": {"added": 8200, "removed": 0, "relabelled": 312, "updated": 40},
    "exports": {
        "jsonl": "/api/v1/datasets/hate-speech-en/versions/3/export?format=jsonl",
        "csv": "/api/v1/datasets/hate-speech-en/versions/3/export?format=csv",
        "csv-excel": "/api/v1/datasets/hate-speech-en/versions/3/export?format=csv-excel",
        "parquet": "/api/v1/datasets/hate-speech-en/versions/3/export?format=parquet",
        "label-studio": "/api/v1/datasets/hate-speech-en/versions/3/export?format=label-studio",
    },
    "url": "/api/v1/datasets/hate-speech-en/versions/3/",
    "created_by": "lead",
    "created_at": "2026-11-20T17:40:11.532000Z",
}

DATASET = OpenApiExample("A dataset", value=_DATASET, response_only=True, status_codes=["200", "201"])
DATASET_PAGE = OpenApiExample(
    "A page of datasets",
    value={"next": "/api/v1/datasets/?cursor=cD1oYXRl", "previous": None, "results": [_DATASET]},
    response_only=True,
)
DATASET_CREATE = OpenApiExample(
    "English hate speech, split by conversation",
    value={
        "slug": "hate-speech-en",
        "name": "Hate speech (English)",
        "filters": {"policies": ["hate"], "languages": ["en"], "label_sources": ["adjudication", "consensus"]},
        "group_by": "meta:conversation_id",
        "train_percent": 80,
        "dev_percent": 10,
        "redact_pii_default": True,
    },
    request_only=True,
)
VERSION = OpenApiExample("A version", value=_VERSION, response_only=True, status_codes=["200", "201"])
VERSION_PAGE = OpenApiExample(
    "A page of versions", value={"next": None, "previous": None, "results": [_VERSION]}, response_only=True
)
VERSION_CREATE = OpenApiExample(
    "Rebuild with this year's labels only",
    value={"filters": {"policies": ["hate"], "languages": ["en"], "date_from": "2026-01-01"}},
    request_only=True,
)
BUILD = OpenApiExample(
    "A background build",
    value={
        "id": 17,
        "dataset": "hate-speech-en",
        "status": "running",
        "rows_expected": 1200000,
        "version": None,
        "version_url": None,
        "error": "",
        "url": "/api/v1/datasets/hate-speech-en/builds/17",
        "created_at": "2026-11-20T17:40:11.532000Z",
        "started_at": "2026-11-20T17:40:12.002000Z",
        "finished_at": None,
    },
    response_only=True,
    status_codes=["200", "202"],
)
EXPORT_JOB = OpenApiExample(
    "A background export in progress",
    value={
        "id": 42,
        "dataset": "hate-speech-en",
        "version": 3,
        "format": "parquet",
        "split": "train",
        "redact_pii": True,
        "status": "running",
        "rows_total": 960050,
        "rows_done": 410000,
        "progress": 0.4271,
        "bytes": 0,
        "sha256": "",
        "download_url": None,
        "url": "/api/v1/exports/42",
        "error": "",
        "created_at": "2026-11-20T17:41:00.000000Z",
        "finished_at": None,
    },
    response_only=True,
    status_codes=["200", "202"],
)
DIFF = OpenApiExample(
    "Two relabelled rows",
    value={
        "dataset": "hate-speech-en",
        "from_version": 2,
        "to_version": 3,
        "counts": {"added": 8200, "removed": 0, "relabelled": 312, "updated": 40},
        "rows": [
            {
                "item_id": 1029,
                "source": "comments",
                "external_id": "c-1029",
                "policy": "hate",
                "change": "relabelled",
                "old_labels": ["not_violating"],
                "new_labels": ["violating"],
                "old_gold_label_id": 5521,
                "new_gold_label_id": 90211,
            }
        ],
        "next_after": "1029:hate",
    },
    response_only=True,
)
