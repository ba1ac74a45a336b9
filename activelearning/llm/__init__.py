"""LLM policy classifiers, without Django: prompts, backends (a local offline model and any
OpenAI-compatible chat-completions endpoint) and the protocol server that serves the local model.

`labeling.llm` turns these into measured reviewers; this package only turns (policy, content) into
a label choice or an abstention.
"""
