from django.urls import path

from gallery import views

app_name = "gallery"
urlpatterns = [
    path("", views.image_list, name="image-list"),
    path("upload/", views.upload, name="upload"),
    path("images/<int:pk>/", views.image_detail, name="image-detail"),
    path("images/<int:pk>/thumbnail/", views.image_thumbnail, name="image-thumbnail"),
    path("images/<int:pk>/file/", views.image_file, name="image-file"),
    path("images/<int:pk>/preview/<slug:size>/", views.image_preview, name="image-preview"),
    path("images/<int:pk>/delete/", views.image_delete, name="image-delete"),
    path("images/<int:pk>/retry/", views.image_retry, name="image-retry"),
]
