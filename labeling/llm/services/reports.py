"""PLACEHOLDER so the reviewer page renders: helper llmquality owns this module and replaces it.

`llm_beside_humans(policy)`: per LLM reviewer of the policy, its figures beside the humans;
`injection_report(run)`: the label flip rate an injection check measured.
"""

from __future__ import annotations

from typing import Any


def llm_beside_humans(*, policy: Any) -> list[Any]:
    return []


def injection_report(*, run: Any) -> Any:
    return None
