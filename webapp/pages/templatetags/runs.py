"""Template filters about runs."""

from __future__ import annotations

from django import template
from django.urls import reverse

from webapp.runs.kinds import KINDS
from webapp.runs.models import Run

register = template.Library()


@register.filter
def page_of(run: Run) -> str:
    """The URL of the page that shows ``run``, as its kind's spec names it."""
    return reverse(KINDS[run.kind].page, args=[run.pk])
