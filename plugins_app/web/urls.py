from django.urls import path

from plugins_app.web import (
    asset_table,
    canvas_views,
    jobs_views,
    views,
    workflow_views,
)

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path("plugins/", views.plugin_list, name="plugin-list"),
    path("plugins/new/", views.plugin_new, name="plugin-new"),
    path("plugins/<int:plugin_id>/", views.plugin_detail, name="plugin-detail"),
    path("plugins/<int:plugin_id>/edit/", views.plugin_edit, name="plugin-edit"),
    path("plugins/<int:plugin_id>/rotate/", views.plugin_rotate, name="plugin-rotate"),
    path("plugins/<int:plugin_id>/probe/", views.plugin_probe, name="plugin-probe"),
    path("members/", views.member_list, name="member-list"),
    path("members/<int:membership_id>/role/", views.member_role, name="member-role"),
    path("storages/", views.storage_list, name="storage-list"),
    path("storages/new/", views.storage_new, name="storage-new"),
    path(
        "storages/<int:storage_id>/delete/",
        views.storage_delete,
        name="storage-delete",
    ),
    path("projects/<int:project_id>/", views.project_detail, name="project-detail"),
    path(
        "projects/<int:project_id>/assets/",
        asset_table.asset_table,
        name="asset-table",
    ),
    path(
        "runs/<int:run_id>/preview/",
        asset_table.preview_poll,
        name="run-preview",
    ),
    path(
        "projects/<int:project_id>/assets/<int:asset_id>/",
        views.asset_detail,
        name="asset-detail",
    ),
    path(
        "projects/<int:project_id>/assets/<int:asset_id>/image",
        views.asset_image,
        name="asset-image",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/",
        views.task_detail,
        name="task-detail",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/submit/",
        views.task_submit_view,
        name="task-submit",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/review/",
        views.task_review_view,
        name="task-review",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/canvas/",
        canvas_views.canvas_state_view,
        name="canvas-state",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/canvas/run/",
        canvas_views.canvas_run,
        name="canvas-run",
    ),
    path(
        "projects/<int:project_id>/plugins/<int:plugin_id>/run/",
        views.run_dialog,
        name="run-dialog",
    ),
    path(
        "projects/<int:project_id>/jobs/",
        jobs_views.project_jobs,
        name="project-jobs",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/jobs/<int:job_id>/submit/",
        jobs_views.task_job_submit,
        name="task-job-submit",
    ),
    path(
        "projects/<int:project_id>/workflow/",
        workflow_views.project_workflow,
        name="project-workflow",
    ),
    path(
        "projects/<int:project_id>/workflow/stages/",
        workflow_views.workflow_stage_add,
        name="workflow-stage-add",
    ),
    path(
        "projects/<int:project_id>/workflow/labels-per-asset/",
        workflow_views.labels_per_asset_set,
        name="labels-per-asset",
    ),
    path(
        "projects/<int:project_id>/workflow/remove/",
        workflow_views.workflow_stage_remove,
        name="workflow-stage-remove",
    ),
    path(
        "projects/<int:project_id>/workflow/retry/",
        workflow_views.workflow_stage_retry_view,
        name="workflow-stage-retry",
    ),
    path(
        "projects/<int:project_id>/presets/<int:preset_id>/delete/",
        workflow_views.preset_delete,
        name="preset-delete",
    ),
    path("runs/", views.run_list, name="run-list"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/cancel/", views.run_cancel_view, name="run-cancel"),
    path("runs/<int:run_id>/retry/", views.run_retry_view, name="run-retry"),
    path("runs/<int:run_id>/undo/", views.run_undo_view, name="run-undo"),
    path("runs/<int:run_id>/writes/", views.run_writes_view, name="run-writes"),
    path(
        "runs/<int:run_id>/exports/<int:upload_id>/",
        views.run_export_file,
        name="run-export-file",
    ),
]
