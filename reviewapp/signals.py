"""Signals the review workflow sends to the apps built on it, so that it imports none of them.

- `content_ingested(sender=ContentItem, item_ids=[...])` is sent after the commit of an ingest
  batch that created content items (ids of the items it created, ascending); re-sent items are not
  in it. A receiver runs in the ingesting request or worker, outside any transaction: it must be
  quick and leave real work to a task. Connected by `activelearning` (in-app model scoring) in its
  AppConfig.ready().
- `decisions_enforced(sender=ModelDecision, decision_ids=[...])` is sent by ingest inside the
  transaction (savepoint) that stores the decisions, once per stored set, with the ids of the
  decisions it has just created whose routing outcome is an automatic action (audit-sampled ones
  included: they are enforced and also checked by people). Re-sent decisions are not in it. A
  receiver that writes (webhook deliveries) commits or rolls back with the decisions and defers any
  I/O with `transaction.on_commit`. Connected by `labeling.exports` (webhooks) in its AppConfig.ready().
"""

from django.dispatch import Signal

content_ingested = Signal()
decisions_enforced = Signal()
