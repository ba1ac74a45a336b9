from django.apps import AppConfig


class LabelStudioConfig(AppConfig):
    name = "labeling.labelstudio"
    label = "labelstudio"
    verbose_name = "Label Studio interop"
