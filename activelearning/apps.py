from django.apps import AppConfig


class ActivelearningConfig(AppConfig):
    name = "activelearning"
    verbose_name = "Active learning"

    def ready(self) -> None:
        # Imported here, not at module top: models can be imported only once the app registry is ready.
        from reviewapp.metrics import collector_register

        from .metrics import DriftCollector, ModelCollector, OnlineCollector

        collector_register(name="activelearning", collector=ModelCollector())
        collector_register(name="activelearning-drift", collector=DriftCollector())
        # Scrape only: the dashboard does not show these, and their queries grow with the policies.
        collector_register(name="activelearning-online", collector=OnlineCollector(), on_ops=False)

        # reviewapp announces new content and imports nothing of this app (no back-edge).
        from reviewapp.signals import content_ingested

        from .services.deployment import content_ingested_receiver

        content_ingested.connect(content_ingested_receiver, dispatch_uid="activelearning.deployment.score_new")
