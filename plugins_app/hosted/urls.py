from django.urls import path

from plugins_app.hosted import views

app_name = "hosted"

urlpatterns = [
    path("plugins/<int:plugin_id>/code/", views.code_upload_view, name="upload"),
    path("plugins/<int:plugin_id>/code/status/", views.code_status_view, name="status"),
]
