from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "labeling.exports"
    label = "exports"
    verbose_name = "Gold datasets: snapshots, exports, webhooks"

    def ready(self) -> None:
        # Labeling core sends the signal and imports nothing of exports (no back-edge).
        from labeling.signals import gold_label_created

        from .webhooks import gold_created

        gold_label_created.connect(gold_created, dispatch_uid="exports.webhooks.gold_created")
