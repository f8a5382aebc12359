from django.urls import path
from rest_framework.routers import DefaultRouter

from duplicates.api.alignment import AlignmentView
from duplicates.api.detection import DetectionStatusView
from duplicates.api.groups import DuplicateGroupDecisionViewSet, DuplicateGroupViewSet
from duplicates.api.pairs import DuplicateDecisionViewSet, DuplicatePairViewSet
from duplicates.api.thresholds import ThresholdsApplyView, ThresholdsUndoView, ThresholdsView
from duplicates.api.trash import TrashViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("duplicates/decisions", DuplicateDecisionViewSet, basename="duplicate-decision")
router.register("duplicates", DuplicatePairViewSet, basename="duplicate-pair")
router.register("duplicate-groups/decisions", DuplicateGroupDecisionViewSet, basename="duplicate-group-decision")
router.register("duplicate-groups", DuplicateGroupViewSet, basename="duplicate-group")
router.register("trash", TrashViewSet, basename="trash")
urlpatterns = [
    path("duplicates/alignment/", AlignmentView.as_view(), name="api-duplicate-alignment"),
    path("duplicates/detection/", DetectionStatusView.as_view(), name="api-duplicate-detection"),
    path("thresholds/", ThresholdsView.as_view(), name="api-thresholds"),
    path("thresholds/apply/", ThresholdsApplyView.as_view(), name="api-thresholds-apply"),
    path("thresholds/undo/", ThresholdsUndoView.as_view(), name="api-thresholds-undo"),
    *router.urls,
]
