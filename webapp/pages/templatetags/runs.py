"""Template filters about runs."""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from analysis.measures.registry import DEFINITIONS
from webapp.runs.kinds import KINDS
from webapp.runs.models import Run

register = template.Library()


@register.filter
def page_of(run: Run) -> str:
    """The URL of the page that shows ``run``, as its kind's spec names it."""
    return reverse(KINDS[run.kind].page, args=[run.pk])


@register.filter
def sides(run: Run) -> str:
    """The two sides of a comparison, "A vs B", each with its pooling where that is what tells
    them apart: one checkpoint against itself, or two poolings."""
    a, b = run.checkpoint, run.checkpoint_b
    assert a is not None and b is not None  # a comparison has two sides
    pooling_a = run.params.get("pooling", "")
    pooling_b = run.params.get("pooling_b") or pooling_a
    if a.pk == b.pk or pooling_a != pooling_b:
        return f"{a.name} ({pooling_a}) vs {b.name} ({pooling_b})"
    return f"{a.name} vs {b.name}"


@register.filter
def plain(value: object) -> str:
    """A run parameter's value as plain text: a list's items joined by commas (an inner list
    in parentheses), not Python's repr (``['conv1', 'conv2']`` reads ``conv1, conv2``)."""
    if isinstance(value, list | tuple):
        return ", ".join(
            f"({plain(v)})" if isinstance(v, list | tuple) else plain(v) for v in value
        )
    return str(value)


@register.filter
def definition(measure_id: str) -> str:
    """The one-line definition of the measure ``measure_id`` names (the registry's)."""
    return DEFINITIONS.get(measure_id, "")


@register.simple_block_tag
def run_title(content: str, run: Run) -> str:
    """A result page's title: the run's name where it has one (runs can be renamed), else
    ``content``, the page's own title of what the run is."""
    return run.name or content


@register.simple_block_tag
def run_heading(content: str, run: Run) -> SafeString:
    """A result page's heading: the run's name, with ``content`` (what the run is) beneath it;
    ``content`` alone when the run has no name."""
    if not run.name:
        return format_html("<h1>{}</h1>", content)
    return format_html('<h1>{}</h1>\n<p class="run-subject">{}</p>', run.name, content)
