from django.urls import path

from ..views import prelabels

urlpatterns = [
    path("", prelabels.prelabels_list, name="prelabels-list"),
    path("<int:queue_id>/", prelabels.prelabels_update, name="prelabels-update"),
]
