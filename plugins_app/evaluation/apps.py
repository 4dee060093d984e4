from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "plugins_app.evaluation"
    label = "evaluation"
    verbose_name = "Run comparisons"
