from django.urls import path
from rest_framework.routers import DefaultRouter

from pipeline.api.sources import LibrarySourceViewSet
from pipeline.api.views import ImageViewSet, SearchByUploadView

router = DefaultRouter(trailing_slash=True)
router.register("images", ImageViewSet, basename="image")
router.register("sources", LibrarySourceViewSet, basename="source")
urlpatterns = [
    *router.urls,
    path("search/", SearchByUploadView.as_view(), name="api-search"),
]
