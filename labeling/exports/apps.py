from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "labeling.exports"
    label = "exports"
    verbose_name = "Gold datasets: snapshots, exports, webhooks"
