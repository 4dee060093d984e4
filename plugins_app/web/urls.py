from django.urls import path

from plugins_app.web import (
    asset_table,
    canvas_views,
    jobs_views,
    org_views,
    plugin_views,
    project_views,
    run_views,
    workflow_views,
)

app_name = "web"

urlpatterns = [
    path("", project_views.home, name="home"),
    path("plugins/", plugin_views.plugin_list, name="plugin-list"),
    path("plugins/new/", plugin_views.plugin_new, name="plugin-new"),
    path("plugins/<int:plugin_id>/", plugin_views.plugin_detail, name="plugin-detail"),
    path("plugins/<int:plugin_id>/edit/", plugin_views.plugin_edit, name="plugin-edit"),
    path(
        "plugins/<int:plugin_id>/rotate/",
        plugin_views.plugin_rotate,
        name="plugin-rotate",
    ),
    path(
        "plugins/<int:plugin_id>/probe/", plugin_views.plugin_probe, name="plugin-probe"
    ),
    path("members/", org_views.member_list, name="member-list"),
    path(
        "members/<int:membership_id>/role/", org_views.member_role, name="member-role"
    ),
    path("storages/", org_views.storage_list, name="storage-list"),
    path("storages/new/", org_views.storage_new, name="storage-new"),
    path(
        "storages/<int:storage_id>/delete/",
        org_views.storage_delete,
        name="storage-delete",
    ),
    path(
        "projects/<int:project_id>/",
        project_views.project_detail,
        name="project-detail",
    ),
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
        project_views.asset_detail,
        name="asset-detail",
    ),
    path(
        "projects/<int:project_id>/assets/<int:asset_id>/image",
        project_views.asset_image,
        name="asset-image",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/",
        project_views.task_detail,
        name="task-detail",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/submit/",
        project_views.task_submit_view,
        name="task-submit",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/review/",
        project_views.task_review_view,
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
        run_views.run_dialog,
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
    path("runs/", run_views.run_list, name="run-list"),
    path("runs/<int:run_id>/", run_views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/cancel/", run_views.run_cancel_view, name="run-cancel"),
    path("runs/<int:run_id>/retry/", run_views.run_retry_view, name="run-retry"),
    path("runs/<int:run_id>/undo/", run_views.run_undo_view, name="run-undo"),
    path("runs/<int:run_id>/writes/", run_views.run_writes_view, name="run-writes"),
    path(
        "runs/<int:run_id>/exports/<int:upload_id>/",
        run_views.run_export_file,
        name="run-export-file",
    ),
]
