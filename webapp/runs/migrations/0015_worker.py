from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0014_probe_previews"),
    ]

    operations = [
        migrations.CreateModel(
            name="Worker",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200, unique=True)),
                ("queues", models.JSONField(default=list)),
                ("concurrency", models.PositiveIntegerField(null=True)),
                ("started_at", models.DateTimeField()),
                ("seen_at", models.DateTimeField()),
            ],
            options={"ordering": ["name"]},
        ),
    ]
