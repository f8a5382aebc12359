from django.urls import path

from gallery import views

app_name = "gallery"
urlpatterns = [
    path("", views.image_list, name="image-list"),
    path("images/<int:pk>/thumbnail/", views.image_thumbnail, name="image-thumbnail"),
    path("images/<int:pk>/file/", views.image_file, name="image-file"),
    path("images/<int:pk>/preview/<slug:size>/", views.image_preview, name="image-preview"),
]
