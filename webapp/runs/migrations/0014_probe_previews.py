import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0006_upload_checks"),
        ("runs", "0013_run_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="proberesult",
            name="previews",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="catalog.blob",
            ),
        ),
    ]
