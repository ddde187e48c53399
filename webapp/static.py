"""How collectstatic writes the front end: every file under a name with a hash of its content
(WhiteNoise then serves it with a year's caching, since the name changes with the content),
a gzip (and, where Brotli is installed, a Brotli) copy beside each text file, which WhiteNoise
serves to browsers that accept it, and the ES modules' imports of each other rewritten to the
hashed names, so that a page and the modules it imports name the same files."""

from __future__ import annotations

from collections.abc import Callable
from re import Match
from typing import Any

from django.conf import settings
from whitenoise.storage import CompressedManifestStaticFilesStorage


def _ours(name: str) -> bool:
    """Whether ``name`` is one of this project's files (static/), not a library app's."""
    return any((root / name).is_file() for root in settings.STATICFILES_DIRS)


class StaticStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True

    def stored_name(self, name: str) -> str:
        """The collected file's hashed name; before collectstatic has run (tests, a first
        ``runserver``), the source's own name, which the finders serve."""
        try:
            return str(super().stored_name(name))
        except ValueError:
            return name

    def url_converter(
        self, name: str, hashed_files: dict[str, Any], template: str | None = None
    ) -> Callable[[Match[str]], str]:
        """References in this project's files must resolve; a library app's file that names
        one it does not ship (django-htmx's extensions import ``htmx``, which the page
        provides) keeps the reference as written."""
        convert = super().url_converter(name, hashed_files, template)
        if _ours(name):
            return convert

        def lenient(match: Match[str]) -> str:
            try:
                return convert(match)
            except ValueError:
                return match[0]

        return lenient
