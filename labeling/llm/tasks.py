"""Celery tasks of LLM reviewers (queue `llm`): thin, take ids, call services."""
