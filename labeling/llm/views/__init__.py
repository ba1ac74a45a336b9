"""Pages of LLM reviewers, one module per topic (reviewers, drafts, prelabels)."""
