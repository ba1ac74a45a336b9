"""Active-learning services: every state change of rounds, models, scores, selections and thresholds.

Views, the REST API, Celery tasks and management commands call these functions and never write
the models themselves. Modules by topic:

- `pipeline`: the stages of a round, their progress and tasks, and `enqueue_after_commit`;
- `rounds`: start, log, finish or fail a round (`TrainingRun`), and going on to the next stage;
- `datasets`: current gold labels of a policy as training/dev/test arrays, with stable splits;
- `features`: encoders, the `ItemEmbedding` cache, features for items;
- `registry`: artifact files and the per-process model cache;
- `training`: train and register a `ModelVersion` (the SIGKILL-safe part);
- `evaluation`, `promotion`: honest held-out metrics and champion/challenger;
- `scoring`, `selection`: chunked pool scoring and batch selection into review queues;
- `thresholds`: routing-threshold proposals and their approval;
- `deployment`, `deployment_comparison`: live / shadow / rollback of a policy's model, in-app
  scoring of new content by the deployed versions, and shadow-vs-live figures;
- `numeric`: numpy helpers the numeric core does not offer yet.
"""
