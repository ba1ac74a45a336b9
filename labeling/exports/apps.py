from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "labeling.exports"
    label = "exports"
    verbose_name = "Gold datasets: snapshots, exports, webhooks"

    def ready(self) -> None:
        # The apps below send signals and import nothing of exports (no back-edge).
        from labeling.signals import appeal_decided, gold_label_created
        from reviewapp.signals import decisions_enforced

        from .events import appeal_decided_emit, decisions_enforced_emit, gold_created_emit

        gold_label_created.connect(gold_created_emit, dispatch_uid="exports.events.gold_created")
        appeal_decided.connect(appeal_decided_emit, dispatch_uid="exports.events.appeal_decided")
        decisions_enforced.connect(decisions_enforced_emit, dispatch_uid="exports.events.decisions_enforced")
