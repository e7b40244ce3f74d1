"""URLconf of the async views (``settings_async``)."""

from django.urls import path

from apps.djangoproj import views_async

urlpatterns = [
    path("hello", views_async.hello),
    path("json", views_async.json),
    path("io", views_async.io),
    path("cpu", views_async.cpu),
]

handler404 = "apps.djangoproj.responses.not_found"
