from django.apps import AppConfig
from django.conf import settings
from PIL import Image as PILImage


class GalleryConfig(AppConfig):
    name = "gallery"
    verbose_name = "Image library"

    def ready(self) -> None:
        """Pillow's own decompression-bomb threshold follows IMGSIM_MAX_PIXELS in every process (web and worker)."""
        PILImage.MAX_IMAGE_PIXELS = settings.IMGSIM_MAX_PIXELS
