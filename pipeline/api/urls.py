from rest_framework.routers import DefaultRouter

from gallery.api.views import ImageViewSet

router = DefaultRouter(trailing_slash=True)
router.register("images", ImageViewSet, basename="image")
urlpatterns = router.urls
