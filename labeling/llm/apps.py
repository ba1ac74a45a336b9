from django.apps import AppConfig


class LLMConfig(AppConfig):
    name = "labeling.llm"
    label = "llm"
    verbose_name = "LLM reviewers"
