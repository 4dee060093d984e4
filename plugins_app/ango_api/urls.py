from django.urls import path

from plugins_app.ango_api import views

app_name = "ango_api"

urlpatterns = [
    path("project/<str:project_id>", views.project_detail, name="project"),
    path("project/<str:project_id>/assets", views.project_assets, name="assets"),
    path("import/labels", views.import_labels, name="import-labels"),
    path("task/<str:task_id>", views.task_detail, name="task"),
    path("files/<str:token>", views.asset_file, name="asset-file"),
]
