from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path

from plugins_app.dashboard.api import router as dashboard_router
from plugins_app.evaluation.api import router as comparisons_router
from plugins_app.web.api import api
from plugins_app.web.jobs_api import router as jobs_router
from plugins_app.web.login import LoginView


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    # Browsers ask for /favicon.ico on every page whatever the <link> says;
    # resolved per request so the static storage's hashed name is used.
    return HttpResponseRedirect(static("img/favicon.svg"))


# Mounted here, not in web/api/: the comparisons app sits above the web app
# (it uses its access checks), so the web app does not import it.
api.add_router("/comparisons", comparisons_router)
# Beside web/api/plugins.py's /plugins routes: the dashboard sits above the web
# app too.
api.add_router("/plugins", dashboard_router)
# Parallel labeling's routes (/projects/{id}/jobs, /tasks/{id}/jobs...).
api.add_router("", jobs_router)

urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("v2/", include("plugins_app.ango_api.urls")),
    path("api/", api.urls),
    path("", include("plugins_app.ops.urls")),
    path("", include("plugins_app.web.urls")),
    path("", include("plugins_app.hosted.urls")),
    path("", include("plugins_app.evaluation.urls")),
    path("", include("plugins_app.dashboard.urls")),
]
