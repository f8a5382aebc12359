"""API shapes of search requests and results."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from core.query_params import WholeNumberField
from gallery.api.serializers import ImageSerializer
from search.result_labels import LABELS, MEANINGS, TITLES
from search.thresholds import Origin

LABEL_HELP = "; ".join(f"{label}: {TITLES[label]}, {MEANINGS[label]}" for label in LABELS)


class ResultCountField(WholeNumberField):
    """k, the number of results: at least 1, at most IMGSIM_SEARCH_MAX_K as configured when validated."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("default", 10)
        super().__init__(**kwargs)

    def to_internal_value(self, data: object) -> int:
        value = super().to_internal_value(data)
        if value > settings.IMGSIM_SEARCH_MAX_K:
            raise serializers.ValidationError(f"k must be at most {settings.IMGSIM_SEARCH_MAX_K}.")
        return value


class SearchByUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, use_url=False)
    k = ResultCountField()
    rating = serializers.IntegerField(
        min_value=0, max_value=5, required=False, allow_null=True, help_text="Overrides the photo's own rating."
    )
    add_to_library = serializers.BooleanField(default=False)


class SimilarQuerySerializer(serializers.Serializer):
    k = ResultCountField()
    rating = WholeNumberField(min_value=0, max_value=5, required=False, allow_null=True)


class SimilarImageSerializer(serializers.Serializer):
    similarity = serializers.FloatField(help_text="Exact cosine similarity of the embeddings.")
    score = serializers.FloatField(help_text="Similarity plus the rating term; results are ordered by it.")
    label = serializers.ChoiceField(
        choices=list(LABELS), help_text=f"What the similarity means, by the lines in `labels`: {LABEL_HELP}."
    )
    match = serializers.BooleanField(help_text="The same photo or the same scene (and not a rating fallback).")
    image = ImageSerializer()


class ResultLabelSerializer(serializers.Serializer):
    label = serializers.ChoiceField(choices=list(LABELS))
    title = serializers.CharField(help_text='What the page shows, e.g. "same scene".')
    at_least = serializers.FloatField(
        allow_null=True, help_text="The lowest similarity with this label (thresholds in force); null for weak."
    )
    meaning = serializers.CharField()


class SearchResultSerializer(serializers.Serializer):
    matched = serializers.BooleanField(help_text="Some result is the same photo or the same scene.")
    fallback = serializers.BooleanField(
        help_text="Results are images with the closest rating (none is the same photo or scene)."
    )
    summary = serializers.CharField(
        help_text='What the results say, e.g. "No photo in the library is the same photo or scene; the closest '
        'look alike: beach.jpg (0.74)."'
    )
    threshold = serializers.FloatField(help_text="The match threshold: the lowest similarity labelled same_scene.")
    labels = ResultLabelSerializer(many=True, help_text="The labels, best first, with their lines in force.")
    query_rating = serializers.IntegerField(allow_null=True)
    k = serializers.IntegerField()
    index_version = serializers.IntegerField(allow_null=True)
    searched = serializers.IntegerField()
    results = SimilarImageSerializer(many=True)


class IndexRepairSerializer(serializers.Serializer):
    failures = serializers.IntegerField(help_text="Automatic builds failed in a row since the last ready one.")
    last_error = serializers.CharField()
    next_attempt_at = serializers.DateTimeField(allow_null=True, help_text="When the next retry runs (backoff).")


class ThresholdSourceSerializer(serializers.Serializer):
    origin = serializers.ChoiceField(
        choices=list(Origin.ALL),
        help_text="environment (a variable wins), calibrated or auto_calibrated (applied on this library), "
        "measured_default (the model's), provisional (the model's unmeasured starting values, until the library "
        "calibrates itself), generic (a model nobody measured).",
    )
    description = serializers.CharField(help_text='e.g. "calibrated on this library on 2026-11-30 by sam"')
    setting_id = serializers.IntegerField(allow_null=True, help_text="The applied thresholds (calibrated ones).")


class ThresholdSourcesSerializer(serializers.Serializer):
    match = ThresholdSourceSerializer()
    near_duplicate = ThresholdSourceSerializer()
    similar = ThresholdSourceSerializer()


class ThresholdsInForceSerializer(serializers.Serializer):
    model = serializers.CharField()
    match = serializers.FloatField(
        help_text="A search result at or above it is the same scene (or photo) as the query: a match."
    )
    near_duplicate = serializers.FloatField(help_text="Pairs at or above it are the same photo.")
    similar = serializers.FloatField(help_text="Pairs at or above it look alike (grey zone verified geometrically).")
    source = serializers.CharField(help_text="Where the near-duplicate threshold comes from.")
    sources = ThresholdSourcesSerializer(help_text="Where each value comes from.")
    setting_id = serializers.IntegerField(
        allow_null=True, help_text="The applied thresholds of this model (null: defaults or environment only)."
    )


class IndexStatusSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField(allow_null=True)
    kind = serializers.CharField()
    indexed = serializers.IntegerField()
    searchable = serializers.IntegerField()
    pending = serializers.IntegerField()
    queued_for_embedding = serializers.IntegerField()
    built_at = serializers.DateTimeField(allow_null=True)
    build_seconds = serializers.FloatField(allow_null=True)
    rebuilding = serializers.BooleanField()
    last_build = serializers.DictField(allow_null=True)
    thresholds = ThresholdsInForceSerializer(help_text="The thresholds in force and where each comes from.")
    repair = IndexRepairSerializer(allow_null=True, help_text="Failed automatic builds and the next retry.")


class WorkerClusterSerializer(serializers.Serializer):
    host = serializers.CharField()
    pid = serializers.IntegerField()
    queue = serializers.CharField()
    started_at = serializers.DateTimeField()
    seen_at = serializers.DateTimeField()
    workers = serializers.IntegerField(help_text="Worker processes alive at the last heartbeat.")
    busy = serializers.IntegerField(help_text="Workers running a task at the last heartbeat.")
    waiting_tasks = serializers.IntegerField(help_text="Tasks the cluster fetched and has not started.")
    worker_pids = serializers.ListField(child=serializers.IntegerField(), help_text="Process ids of its workers.")
    restarts = serializers.IntegerField(help_text="Times the watchdog restarted this cluster after it wedged.")
    last_restart_at = serializers.DateTimeField(allow_null=True)
    last_restart_reason = serializers.CharField()


class WorkerHealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["ok", "inline", "no_worker", "stuck"],
        help_text="ok; inline (tasks run in the web server); no_worker (no heartbeat recently); "
        "stuck (queued images wait and none was embedded for IMGSIM_QUEUE_STUCK_SECONDS).",
    )
    problem = serializers.BooleanField(help_text="True for no_worker and stuck: uploads are not being embedded.")
    summary = serializers.CharField()
    action = serializers.CharField(help_text="What to run or check ('' when nothing).")
    checked_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField(allow_null=True, help_text="The newest heartbeat of any worker.")
    queued_images = serializers.IntegerField()
    oldest_waiting_at = serializers.DateTimeField(allow_null=True)
    last_embedded_at = serializers.DateTimeField(allow_null=True)
    workers = WorkerClusterSerializer(many=True, required=False, help_text="Staff only: the running clusters.")
    recent_restarts = WorkerClusterSerializer(
        many=True, required=False, help_text="Staff only: clusters the watchdog restarted in the last hour."
    )
