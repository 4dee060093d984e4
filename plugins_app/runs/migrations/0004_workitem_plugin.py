import django.db.models.deletion
from django.db import migrations, models


def copy_plugin(apps, schema_editor):
    WorkItem = apps.get_model("runs", "WorkItem")
    Run = apps.get_model("runs", "Run")
    for run_id, plugin_id in Run.objects.values_list("id", "plugin_id"):
        WorkItem.objects.filter(run_id=run_id).update(plugin_id=plugin_id)


class Migration(migrations.Migration):
    dependencies = [
        ("plugins", "0002_initial"),
        ("runs", "0003_workitem_queued_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="workitem",
            name="plugin",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="plugins.plugin",
            ),
        ),
        migrations.RunPython(copy_plugin, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="workitem",
            name="plugin",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="plugins.plugin",
            ),
        ),
        migrations.AddIndex(
            model_name="workitem",
            index=models.Index(fields=["plugin", "state", "id"], name="next_job"),
        ),
    ]
