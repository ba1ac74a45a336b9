"""State changes of LLM reviewers, by topic: reviewers (configuration), runs (jobs and their
chunks), reports (read side: figures beside the humans, injection flip rate), suggestions
(pre-labels and their exposure draw), drafts (the policy draft lifecycle), draft_evaluation (a draft
measured by an LLM reviewer before publishing), scoring (the LLM as an
upstream model)."""
