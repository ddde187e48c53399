"""The one error type that carries a message meant for the person who supplied the input, and
:func:`plain`, which turns a library's error text into a line fit for that person."""

from __future__ import annotations

import re


class InputError(ValueError):
    """A file, array or request that cannot be used; ``str(err)`` is shown to the user as is
    (one plain sentence). ``details`` is the longer text behind it (a model's traceback, say),
    shown folded to the workspace's members, or ""."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details

    @classmethod
    def caused_by(cls, message: str, cause: BaseException) -> InputError:
        """``message`` (what went wrong with the user's file), followed by the meaningful line
        of the library's error ``cause`` (:func:`plain`) where it has one; the library's whole
        text, scrubbed, as the details."""
        line = plain(cause)
        return cls(f"{message}: {line}" if line else message, details=scrubbed(cause))


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
URL = re.compile(r"https?://\S+")
OBJECT_ADDRESS = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])(?:/[^\s/'\"`:,;()<>\[\]]+){2,}/?")
EXCEPTION_PREFIX = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Warning)): ")
FRAME = re.compile(r"^(?:\s|File \"|Traceback|~|\^|-{3,}|The above exception|During handling)")
ADVICE = (
    "allow_pickle",
    "weights_only",
    "pip install",
    "please file",
    "please report",
    "please open an issue",
    "environment variable",
    "set the ",
    "you can ",
    "if you ",
    "to fix",
    "for more information",
    "for further information",
    "consider ",
)
PLAIN_LIMIT = 300


def plain(text: str | BaseException, limit: int = PLAIN_LIMIT) -> str:
    """A library's error text as one plain line for the person who sent the file: of a
    multi-line text (a traceback) its last line that is not a frame, without the exception's
    class name; ANSI colour codes removed; the server's paths and object addresses replaced by
    "the file"; links and sentences of advice meant for a programmer (``allow_pickle=``,
    ``weights_only=False``, "pip install …") dropped, going back a line where nothing else is
    left; at most ``limit`` characters; "" when no line says more than advice."""
    text = ANSI.sub("", str(text))
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    for raw in reversed([line for line in lines if not FRAME.match(line)] or lines):
        line = EXCEPTION_PREFIX.sub("", raw.strip())
        line = OBJECT_ADDRESS.sub("the file", ABSOLUTE_PATH.sub("the file", URL.sub("", line)))
        sentences = re.split(r"(?<=[.!?])\s+", line)
        kept = " ".join(s for s in sentences if not any(a in s.lower() for a in ADVICE)).strip()
        if kept:
            return kept if len(kept) <= limit else kept[: limit - 1].rstrip() + "…"
    return ""


def scrubbed(text: str | BaseException) -> str:
    """A library's whole error text (a traceback) for the folded details: ANSI colour codes
    removed and the server's paths replaced by "the file"."""
    return ABSOLUTE_PATH.sub("the file", ANSI.sub("", str(text))).strip()
