"""LLM reviewers: LLM policy classifiers measured like any reviewer (see models.py)."""
