"""URL map: web pages, the REST API with its OpenAPI schema and docs, auth and the admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.login_throttle import ThrottledLoginView

urlpatterns = [
    path("", include("pipeline.urls")),  # gallery's and search's pages, the pipeline's among them
    path("", include("duplicates.urls")),
    path("api/", include("pipeline.api.urls")),  # the images (list, upload, delete, retry) and search by upload
    path("api/", include("search.api.urls")),
    path("api/", include("duplicates.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # Browsers and tools that ask for /favicon.ico without reading the page's <link rel="icon">.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.svg"), permanent=True)),
]

handler400 = "imgsim_site.error_handlers.bad_request"
handler403 = "imgsim_site.error_handlers.permission_denied"
handler404 = "imgsim_site.error_handlers.page_not_found"
handler500 = "imgsim_site.error_handlers.server_error"
