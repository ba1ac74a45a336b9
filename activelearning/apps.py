from django.apps import AppConfig


class ActivelearningConfig(AppConfig):
    name = "activelearning"
    verbose_name = "Active learning"

    def ready(self) -> None:
        # Imported here, not at module top: models can be imported only once the app registry is ready.
        from reviewapp.metrics import collector_register

        from .metrics import DriftCollector, ModelCollector

        collector_register(name="activelearning", collector=ModelCollector())
        collector_register(name="activelearning-drift", collector=DriftCollector())
