from django.urls import path

from search.api import views

urlpatterns = [
    path("images/<int:pk>/similar/", views.SimilarToImageView.as_view(), name="api-similar"),
    path("index/", views.IndexStatusView.as_view(), name="api-index-status"),
    path("index/rebuild/", views.IndexRebuildView.as_view(), name="api-index-rebuild"),
    path("health/", views.WorkerHealthView.as_view(), name="api-health"),
]
