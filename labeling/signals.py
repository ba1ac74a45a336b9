"""Signals labeling sends to the apps built on it, so that labeling imports none of them.

`gold_label_created(sender=GoldLabel, gold=<GoldLabel>)` is sent inside the transaction that
records the gold label, after its audit event: a receiver that writes (an outbox row, webhook
deliveries) commits or rolls back with the label, and defers any I/O with `transaction.on_commit`.

`appeal_decided(sender=Appeal, appeal=<Appeal>)` is sent inside the transaction that concludes
the appeal (upheld or overturned, `outcome_gold` set), after its audit event, on the same terms.

Connected by `labeling.exports` (webhooks) in its AppConfig.ready().
"""

from django.dispatch import Signal

gold_label_created = Signal()
appeal_decided = Signal()
