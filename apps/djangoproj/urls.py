"""URLconf of the sync views (``settings``)."""

from django.urls import path

from apps.djangoproj import views

urlpatterns = [
    path("hello", views.hello),
    path("json", views.json),
    path("io", views.io),
    path("cpu", views.cpu),
]

handler404 = "apps.djangoproj.responses.not_found"
