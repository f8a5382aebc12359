from django.urls import path

from duplicates.views import groups as group_views
from duplicates.views import pairs as pair_views
from duplicates.views import thresholds as threshold_views
from duplicates.views import trash as trash_views

app_name = "duplicates"
urlpatterns = [
    path("duplicates/", group_views.review, name="review"),
    path("duplicates/cards/", group_views.review_cards, name="review-cards"),
    path("duplicates/groups/<int:pk>/resolve/", group_views.group_resolve, name="group-resolve"),
    path("duplicates/groups/<int:pk>/undo/", group_views.group_undo, name="group-undo"),
    path("duplicates/groups/apply-suggestions/", group_views.groups_apply_suggestions, name="groups-apply"),
    path("duplicates/images/<int:pk>/unstack/", group_views.unstack, name="unstack"),
    path("duplicates/pairs/", pair_views.pair_review, name="pairs"),
    path("duplicates/<int:pk>/", pair_views.pair_detail, name="pair-detail"),
    path("duplicates/<int:pk>/resolve/", pair_views.pair_resolve, name="pair-resolve"),
    path("duplicates/<int:pk>/undo/", pair_views.pair_undo, name="pair-undo"),
    path("duplicates/decisions/", pair_views.decisions, name="decisions"),
    path("duplicates/decisions/<int:pk>/undo/", pair_views.decision_undo, name="decision-undo"),
    path("duplicates/decisions/groups/<int:pk>/undo/", group_views.group_decision_undo, name="group-decision-undo"),
    path("duplicates/scan/", pair_views.scan, name="scan"),
    path("duplicates/calibration/", threshold_views.calibration, name="calibration"),
    path("duplicates/calibration/<int:pk>/plot.png", threshold_views.calibration_plot, name="calibration-plot"),
    path("duplicates/calibration/<int:pk>/apply/", threshold_views.calibration_apply, name="calibration-apply"),
    path("duplicates/thresholds/undo/", threshold_views.thresholds_undo_view, name="thresholds-undo"),
    path("trash/", trash_views.trash, name="trash"),
    path("trash/<int:pk>/restore/", trash_views.trash_restore, name="trash-restore"),
    path("trash/restore/", trash_views.trash_restore_selected, name="trash-restore-selected"),
    path("trash/empty/", trash_views.trash_empty_view, name="trash-empty"),
    path("trash/<int:pk>/purge/", trash_views.trash_purge, name="trash-purge"),
]
