"""Request body parsers of the API."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser, JSONParser

from webapp.catalog.uploads import MAX_CHUNK_SIZE


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, where a body nested too deeply for Python's parser (a hostile
    ``[[[[…]]]]``, say) is a 400 like any other malformed body, not a RecursionError."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("The JSON body is nested too deeply.") from None


class ChunkTooLarge(APIException):
    status_code = 413
    default_code = "chunk_too_large"


class ChunkParser(BaseParser):
    """A raw chunk of an upload, spooled to a temporary file as it arrives (a chunk never sits
    whole in memory). Its ``Content-Length`` is checked before a byte is read: at most
    :data:`webapp.catalog.uploads.MAX_CHUNK_SIZE`."""

    media_type = "application/octet-stream"

    def parse(  # type: ignore[override]  # request.data is what parse returns: here a file
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> IO[bytes]:
        request = parser_context["request"] if parser_context else None
        length = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
        if not str(length).isdigit():
            raise ParseError("A chunk needs a Content-Length.")
        if int(length) > MAX_CHUNK_SIZE:
            raise ChunkTooLarge(
                f"A chunk may be at most {MAX_CHUNK_SIZE} bytes; this one is {length}: "
                "send the file in smaller pieces."
            )
        body = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)
        if stream is not None:
            shutil.copyfileobj(stream, body, 1024 * 1024)
        body.seek(0)
        return body
