from django.urls import path

from . import views

urlpatterns = [
    path("decisions", views.DecisionsView.as_view(), name="api-decisions"),
]
