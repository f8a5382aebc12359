from django.urls import path

from duplicates import views

app_name = "duplicates"
urlpatterns = [
    path("duplicates/", views.review, name="review"),
    path("duplicates/<int:pk>/", views.pair_detail, name="pair-detail"),
    path("duplicates/<int:pk>/resolve/", views.pair_resolve, name="pair-resolve"),
    path("duplicates/<int:pk>/undo/", views.pair_undo, name="pair-undo"),
    path("duplicates/decisions/", views.decisions, name="decisions"),
    path("duplicates/decisions/<int:pk>/undo/", views.decision_undo, name="decision-undo"),
    path("duplicates/scan/", views.scan, name="scan"),
    path("duplicates/calibration/", views.calibration, name="calibration"),
    path("duplicates/calibration/<int:pk>/plot.png", views.calibration_plot, name="calibration-plot"),
]
