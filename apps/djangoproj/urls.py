"""URLconf of the sync views (``settings``)."""

from django.urls import path

from apps.djangoproj import views

urlpatterns = [
    path("hello", views.hello),
    path("json", views.json),
    path("io", views.io),
    path("cpu", views.cpu),
    path("stream", views.stream),
    path("upload", views.upload),
    path("db", views.db),
    path("queries", views.queries),
    path("fortunes", views.fortunes),
    path("db/sleep", views.db_sleep),
]

handler404 = "apps.djangoproj.responses.not_found"
