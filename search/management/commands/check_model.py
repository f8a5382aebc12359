"""Tell, before the first upload, whether the configured backbone's weights can be loaded."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from search.embedding import WeightsUnavailableError
from search.services.embedding_queue import embedder_get


class Command(BaseCommand):
    help = "Load the configured embedding model once and report its name and dimension, or what to do."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            embedder = embedder_get()
        except WeightsUnavailableError as error:
            raise CommandError(f"The embedding model '{settings.IMGSIM_MODEL}' cannot be loaded.\n{error}") from None
        self.stdout.write(
            self.style.SUCCESS(f"Embedding model ready: {embedder.model_name}, {embedder.dim}-d vectors.")
        )
