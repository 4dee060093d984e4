from django.apps import AppConfig


class WorkspaceConfig(AppConfig):
    name = "plugins_app.workspace"
    label = "workspace"
    verbose_name = "Workspace data"
