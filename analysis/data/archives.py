"""Reading uploaded archives (``.zip``, ``.tar``, ``.tar.gz``) without trusting them.

Every member is checked before anything is read: no absolute paths or ``..`` (zip-slip), no
links or device files, at most ``max_files`` files and ``max_bytes`` unpacked bytes in all (zip
bombs). The declared sizes are also enforced while unpacking, since an archive can lie about them.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from analysis.errors import InputError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    is_dir: bool
    is_link: bool
    is_special: bool


def archive_suffix(filename: str) -> str | None:
    """The archive suffix of ``filename`` (``.tar.gz`` is one suffix), or None."""
    lower = filename.lower()
    return next((s for s in ARCHIVE_SUFFIXES if lower.endswith(s)), None)


def check_members(members: list[Member], max_files: int, max_bytes: int) -> list[Member]:
    """The members that are files, once every member is known to be safe to unpack."""
    files = [m for m in members if not m.is_dir]
    if len(files) > max_files:
        raise InputError(f"the archive has {len(files)} files; the limit is {max_files}")
    if sum(m.size for m in files) > max_bytes:
        raise InputError(f"the archive unpacks to more than {max_bytes} bytes")
    for m in members:
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts or "\\" in m.name:
            raise InputError(f"unsafe path in archive: {m.name!r}")
        if m.is_link:
            raise InputError(f"symbolic links are not allowed in archives: {m.name!r}")
        if m.is_special:
            raise InputError(f"not a regular file: {m.name!r}")
    return files


def _zip_member(info: zipfile.ZipInfo) -> Member:
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver wrote no Unix mode
    return Member(
        name=info.filename,
        size=info.file_size,
        is_dir=info.is_dir(),
        is_link=kind == stat.S_IFLNK,
        is_special=kind not in (0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK),
    )


def _tar_member(info: tarfile.TarInfo) -> Member:
    return Member(
        name=info.name,
        size=info.size,
        is_dir=info.isdir(),
        is_link=info.issym() or info.islnk(),
        is_special=not (info.isfile() or info.isdir() or info.issym() or info.islnk()),
    )


def zip_members(zf: zipfile.ZipFile, max_files: int, max_bytes: int) -> list[zipfile.ZipInfo]:
    """The file members of an open zip archive, checked (see :func:`check_members`)."""
    infos = zf.infolist()
    check_members([_zip_member(i) for i in infos], max_files, max_bytes)
    return [i for i in infos if not i.is_dir()]


def unpack(path: str | Path, filename: str, target: Path, max_files: int, max_bytes: int) -> None:
    """Unpack the archive ``path`` (its kind from ``filename``) into the directory ``target``."""
    suffix = archive_suffix(filename)
    if suffix is None:
        raise InputError(f"{filename!r} is not an archive: upload a .zip or .tar(.gz)")
    budget = [max_bytes]
    try:
        if suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                for info in zip_members(zf, max_files, max_bytes):
                    with zf.open(info) as src:
                        _write(src, target / info.filename, budget)
        else:
            with tarfile.open(path, "r:*") as tf:
                infos = tf.getmembers()
                check_members([_tar_member(i) for i in infos], max_files, max_bytes)
                for member in infos:
                    # extractfile gives None for what is not a regular file.
                    extracted = tf.extractfile(member) if member.isfile() else None
                    if extracted is not None:
                        with extracted:
                            _write(extracted, target / member.name, budget)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise InputError.caused_by(f"not a readable {suffix} archive", err) from None


def _write(src: IO[bytes], dest: Path, budget: list[int]) -> None:
    """Copy ``src`` to ``dest``, counting against the bytes left in ``budget``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        while chunk := src.read(1 << 20):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise InputError("the archive unpacks to more bytes than it declares")
            out.write(chunk)


def single_root(directory: Path, marker: str) -> Path:
    """The folder holding ``marker`` (e.g. ``config.json``): ``directory`` itself, or the one
    folder an archive of a directory unpacks to."""
    if (directory / marker).is_file():
        return directory
    children = [c for c in directory.iterdir() if not c.name.startswith((".", "__MACOSX"))]
    if len(children) == 1 and children[0].is_dir() and (children[0] / marker).is_file():
        return children[0]
    raise InputError(
        f"no {marker} at the top of the archive (or in its one top-level folder): "
        "archive the model directory itself"
    )
