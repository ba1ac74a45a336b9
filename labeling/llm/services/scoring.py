"""PLACEHOLDER so `services.runs` imports: helper drafts owns this module and replaces it.

`llm_decisions_record` turns a scoring run's judgements into `ModelDecision`s under the LLM
reviewer's name and version (issue 17, use 4).
"""

from __future__ import annotations


def llm_decisions_record(*, run_id: int, judgement_ids: list[int]) -> int:
    raise NotImplementedError("Scoring runs arrive with helper drafts' labeling/llm/services/scoring.py.")
