"""Signals reviewapp sends to the apps built on it, so that reviewapp imports none of them.

`content_ingested(sender=ContentItem, item_ids=[...])` is sent after the commit of an ingest batch
that created content items (ids of the items it created, ascending); re-sent items are not in it.
A receiver runs in the ingesting request or worker, outside any transaction: it must be quick and
leave real work to a task. Connected by `activelearning` (in-app model scoring) in its AppConfig.ready().
"""

from django.dispatch import Signal

content_ingested = Signal()
