from django.urls import path

from search import views

app_name = "search"
urlpatterns = [
    path("search/", views.search_by_upload, name="search"),
    path("images/<int:pk>/similar/", views.similar_to_image, name="similar"),
]
