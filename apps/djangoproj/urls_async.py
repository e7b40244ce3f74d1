"""URLconf of the async views (``settings_async``)."""

from django.urls import path

from apps.djangoproj import views_async

urlpatterns = [
    path("hello", views_async.hello),
    path("json", views_async.json),
    path("io", views_async.io),
    path("cpu", views_async.cpu),
    path("stream", views_async.stream),
    path("upload", views_async.upload),
    path("db", views_async.db),
    path("queries", views_async.queries),
    path("fortunes", views_async.fortunes),
    path("db/sleep", views_async.db_sleep),
]

handler404 = "apps.djangoproj.responses.not_found"
