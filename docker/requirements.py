"""Print the requirements of pyproject.toml's base dependencies and the named groups, one per
line: what an image installs (``pip install -c requirements.lock -r -``) before it copies the
code. Groups that name ``replens[...]`` include those groups.

    python docker/requirements.py web            # the web image: no model runtime
    python docker/requirements.py worker         # a CPU worker (torch installed first)
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirements(groups: list[str], pyproject: Path = PYPROJECT) -> list[str]:
    """The base dependencies and those of ``groups``, in order, each once."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]

    def expand(group: str) -> Iterator[str]:
        for requirement in project["optional-dependencies"][group]:
            if requirement.startswith(f"{project['name']}["):
                for included in requirement.split("[", 1)[1].rstrip("]").split(","):
                    yield from expand(included.strip())
            else:
                yield requirement

    chosen = [*project["dependencies"], *(r for g in groups for r in expand(g))]
    return list(dict.fromkeys(chosen))


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:])))
