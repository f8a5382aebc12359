from django.urls import path

from search import views

app_name = "search"
urlpatterns = [
    path("images/<int:pk>/similar/", views.similar_to_image, name="similar"),
]
