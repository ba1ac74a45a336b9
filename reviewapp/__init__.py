"""reviewapp: the review workflow (intake, routing, queues, claims, the reviewer workspace)."""
