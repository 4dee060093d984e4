from django.urls import path

from plugins_app.ango_api import views

app_name = "ango_api"

urlpatterns = [
    path("project/<str:project_id>", views.project_detail, name="project"),
    path("project/<str:project_id>/assets", views.project_assets, name="assets"),
    path("project/<str:project_id>/cloud", views.project_cloud, name="cloud"),
    path("batches/<str:project_id>", views.project_batches, name="batches"),
    path("storages", views.storages, name="storages"),
    path(
        "project/<str:project_id>/requeueTasks",
        views.requeue_tasks,
        name="requeue-tasks",
    ),
    path("pluginLog", views.plugin_log, name="plugin-log"),
    path("pluginResponse", views.plugin_response, name="plugin-response"),
    path("import/labels", views.import_labels, name="import-labels"),
    path("issues", views.issue_create, name="issues"),
    path("task/<str:task_id>/metadata", views.task_metadata, name="task-metadata"),
    path("task/<str:task_id>", views.task_detail, name="task"),
    path("annotate/<str:task_id>", views.annotate, name="annotate"),
    path("files/<str:token>", views.asset_file, name="asset-file"),
    # Export plugins: 1.4.x calls /export, 1.3.x /exportV3 (same parameters).
    path("export", views.export, name="export"),
    path("exportV3", views.export, name="export-v3"),
    path("exportFiles/<str:token>", views.export_file, name="export-file"),
    path("getUploadUrl", views.get_upload_url, name="get-upload-url"),
    path("getSignedUrl", views.get_signed_url, name="get-signed-url"),
    path("uploads/<str:token>", views.upload, name="upload"),
    path("signedFiles/<str:token>", views.signed_file, name="signed-file"),
]
