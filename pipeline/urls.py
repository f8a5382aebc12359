"""The library's and search's web pages as the site serves them: gallery's and search's own pages, and, under
the same namespaces, the pipeline's (upload, the image page, delete, retry, search by upload)."""

from django.urls import include, path

from gallery import urls as gallery_urls
from pipeline import source_views, views
from search import urls as search_urls

gallery_pages = [
    path("upload/", views.upload, name="upload"),
    path("images/<int:pk>/", views.image_detail, name="image-detail"),
    path("images/<int:pk>/delete/", views.image_delete, name="image-delete"),
    path("images/<int:pk>/retry/", views.image_retry, name="image-retry"),
    path("sources/", source_views.sources, name="sources"),
    path("sources/<int:pk>/scan/", source_views.source_scan, name="source-scan"),
]
search_pages = [
    path("search/", views.search_by_upload, name="search"),
]

urlpatterns = [
    path("", include(([*gallery_urls.urlpatterns, *gallery_pages], gallery_urls.app_name))),
    path("", include(([*search_pages, *search_urls.urlpatterns], search_urls.app_name))),
]
