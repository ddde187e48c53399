"""The Celery tasks (``workers.tasks``); the Celery app they belong to is ``webapp.celery``."""
