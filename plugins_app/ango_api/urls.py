"""The `/v2/...` endpoints that `imerit-ango` SDK calls make from plugin code,
one module per area: projects.py (project, assets, batches, cloud assets,
storages), labels.py (import/labels), tasks.py (task, issues, requeue,
metadata, annotate), files.py (files behind expiring links, export uploads),
export.py, connector.py (REST connector mode); messages.py parses what the
SDK sends and shapes the replies, auth.py checks its apikey.

Replies follow the shapes the SDK and the public samples read
(ango-plugin-protocol.md §4); query strings are parsed leniently because the SDK
sends them unencoded or as JSON.
"""

from django.urls import path

from plugins_app.ango_api import connector, export, files, labels, projects, tasks

app_name = "ango_api"

urlpatterns = [
    path("project/<str:project_id>", projects.project_detail, name="project"),
    path("project/<str:project_id>/assets", projects.project_assets, name="assets"),
    path("project/<str:project_id>/cloud", projects.project_cloud, name="cloud"),
    path("batches/<str:project_id>", projects.project_batches, name="batches"),
    path("storages", projects.storages, name="storages"),
    path(
        "project/<str:project_id>/requeueTasks",
        tasks.requeue_tasks,
        name="requeue-tasks",
    ),
    path("pluginLog", connector.plugin_log, name="plugin-log"),
    path("pluginResponse", connector.plugin_response, name="plugin-response"),
    path("import/labels", labels.import_labels, name="import-labels"),
    path("issues", tasks.issue_create, name="issues"),
    path("task/<str:task_id>/metadata", tasks.task_metadata, name="task-metadata"),
    path("task/<str:task_id>", tasks.task_detail, name="task"),
    path("annotate/<str:task_id>", tasks.annotate, name="annotate"),
    path("files/<str:token>", files.asset_file, name="asset-file"),
    # Export plugins: 1.4.x calls /export, 1.3.x /exportV3 (same parameters).
    path("export", export.export, name="export"),
    path("exportV3", export.export, name="export-v3"),
    path("exportFiles/<str:token>", files.export_file, name="export-file"),
    path("getUploadUrl", files.get_upload_url, name="get-upload-url"),
    path("getSignedUrl", files.get_signed_url, name="get-signed-url"),
    path("uploads/<str:token>", files.upload, name="upload"),
    path("signedFiles/<str:token>", files.signed_file, name="signed-file"),
]
