"""Rate limits on the expensive endpoints (uploads decode images; searches run the model)."""

from rest_framework.throttling import UserRateThrottle


class UploadRateThrottle(UserRateThrottle):
    scope = "upload"


class SearchRateThrottle(UserRateThrottle):
    scope = "search"
