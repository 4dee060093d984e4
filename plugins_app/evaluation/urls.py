from django.urls import path

from plugins_app.evaluation import views

app_name = "evaluation"

urlpatterns = [
    path(
        "projects/<int:project_id>/comparisons/",
        views.comparison_list,
        name="comparison-list",
    ),
    path(
        "comparisons/<int:comparison_id>/",
        views.comparison_detail,
        name="comparison-detail",
    ),
    path(
        "comparisons/<int:comparison_id>/assets/<int:task_id>/",
        views.comparison_asset,
        name="comparison-asset",
    ),
    path(
        "comparisons/<int:comparison_id>/progress/",
        views.comparison_progress,
        name="comparison-progress",
    ),
    path(
        "comparisons/<int:comparison_id>/retry/",
        views.comparison_retry_view,
        name="comparison-retry",
    ),
]
