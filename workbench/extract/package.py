"""Safe, in-memory reading of one untrusted PMC package: a `.tar.gz`, an extracted folder or a bare `.nxml`.

Nothing is ever written to disk. A `.tar.gz` is streamed once and only the members extraction may need are
kept in memory: the `.nxml` and the image files (all of them, since the `.nxml` may come last in the stream;
never pdf or media). A folder is listed and its members are read lazily, only when asked for.
Members with absolute paths or `..`, links, devices and oversized members are skipped and recorded as
`ExtractError`s. Sizes are checked from the tar headers before reading and every read is capped, so a
gzip/tar bomb neither fills memory nor runs forever: the whole archive may inflate to at most
`max_package_bytes`, one kept member to at most `max_member_bytes`. A package may hold at most
`max_members` entries and is read within `time_budget_s` seconds (`workbench.tarwalk`), so a header bomb (a
million empty members) stops early with `too_many_members` or `time_budget_exceeded`.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from workbench.extract.records import ExtractError
from workbench.tarwalk import (
    DEFAULT_MAX_MEMBERS,
    DEFAULT_TIME_BUDGET_S,
    STREAM_BUFFER,
    TarBounds,
    TarLimitExceeded,
    walk_tar,
)

NXML_SUFFIX = ".nxml"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif")
WANTED_SUFFIXES = (NXML_SUFFIX, *IMAGE_SUFFIXES)
MAX_FOLDER_DEPTH = 3  # an extracted package is a folder, maybe with one top folder inside
_PMCID = re.compile(r"PMC\d+", re.IGNORECASE)
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class PackageLimits:
    """Caps that stop gzip/tar bombs: bytes one kept member may hold, bytes the whole package may inflate to,
    entries it may hold and seconds its archive may take to read."""

    max_member_bytes: int = 200_000_000
    max_package_bytes: int = 2_000_000_000
    max_members: int = DEFAULT_MAX_MEMBERS
    time_budget_s: float = DEFAULT_TIME_BUDGET_S

    @property
    def bounds(self) -> TarBounds:
        return TarBounds(self.max_members, self.time_budget_s)


class MemberError(Exception):
    """A member that exists but cannot be read safely (`reason` is snake_case)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Package:
    """The members of one package that extraction may need (`.nxml` and images), by path inside the package.

    `problems` lists what was skipped while listing (unsafe or oversized members, a corrupt archive).
    `read(name)` returns a member's bytes or raises `MemberError`. `label_names` (file name, folder name, top
    folders) are where a PMCID is looked for when the XML has none.
    """

    source: str
    names: list[str]
    problems: list[ExtractError] = field(default_factory=list)
    reader: Callable[[str], bytes] | None = None
    label_names: tuple[str, ...] = ()

    def read(self, name: str) -> bytes:
        if self.reader is None or name not in self.names:
            raise MemberError("missing_member", name)
        return self.reader(name)

    @property
    def nxml_names(self) -> list[str]:
        return sorted(name for name in self.names if name.lower().endswith(NXML_SUFFIX))

    def pmcid_from_name(self) -> str | None:
        """`PMCnnnn` from the package file name, folder name or top folder (old CRAFT files carry none inside)."""
        for label in self.label_names:
            match = _PMCID.search(label)
            if match:
                return "PMC" + match.group(0)[3:]
        return None


def open_package(source: str | Path, limits: PackageLimits = PackageLimits()) -> Package:
    """List (and for archives, read) the useful members of `source`. Never raises for bad content."""
    path = Path(source)
    try:
        if path.is_symlink():
            return _unusable(path, "unsafe_package", "the package path is a symbolic link")
        if path.is_dir():
            return _open_folder(path, limits)
        if not path.is_file():
            return _unusable(path, "package_not_found", str(path))
        if path.name.lower().endswith(NXML_SUFFIX):
            return _open_single_nxml(path, limits)
        return _open_tar_gz(path, limits)
    except OSError as error:  # permissions, a folder changing under us, an unreadable disk
        return _unusable(path, "unreadable_package", f"{type(error).__name__}: {error}")


def _unusable(path: Path, reason: str, detail: str) -> Package:
    return Package(str(path), [], [_problem(path, "package", reason, detail)], label_names=(path.name,))


def _problem(path: Path, stage: str, reason: str, detail: str) -> ExtractError:
    return ExtractError(package=str(path), stage=stage, reason=reason, detail=detail)


def _is_wanted(name: str) -> bool:
    return name.lower().endswith(WANTED_SUFFIXES)


def unsafe_name_reason(name: str) -> str | None:
    """Why a member name could escape the package folder (absolute, drive letter, `..`), or None when safe."""
    if not name or "\x00" in name:
        return "unsafe_path"
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
        return "absolute_path"
    if ".." in re.split(r"[/\\]", name):
        return "path_traversal"
    return None


# ---------------------------------------------------------------------------------------------- tar.gz


def _member_type_reason(info: tarfile.TarInfo) -> str | None:
    if info.issym() or info.islnk():
        return "link_member"
    if info.ischr() or info.isblk() or info.isfifo():
        return "device_member"
    if info.issparse():
        return "sparse_member"
    if not info.isreg():
        return "unsupported_member"
    return None


def _open_tar_gz(path: Path, limits: PackageLimits) -> Package:
    """Stream the archive once; keep wanted members in memory; record what was skipped and why."""
    kept: dict[str, bytes] = {}
    problems: list[ExtractError] = []
    tops: list[str] = []
    inflated = 0  # bytes of member data the archive declares so far: all of it is decompressed to get past it
    kept_bytes = 0
    try:
        for archive, info in walk_tar(path, limits.bounds):
            name = info.name[2:] if info.name.startswith("./") else info.name
            inflated += info.size
            if inflated > limits.max_package_bytes:
                problems.append(
                    _problem(path, "package", "package_too_large", f"more than {limits.max_package_bytes} bytes")
                )
                break
            if info.isdir():
                continue
            reason = unsafe_name_reason(name) or _member_type_reason(info)
            if reason:
                problems.append(_problem(path, "member", reason, _describe(info)))
                continue
            if not _is_wanted(name):
                continue
            if info.size > limits.max_member_bytes:
                problems.append(_problem(path, "member", "member_too_large", f"{name}: {info.size} bytes"))
                continue
            if kept_bytes + info.size > limits.max_package_bytes:
                problems.append(_problem(path, "package", "package_too_large", f"keeping {name} exceeds cap"))
                break
            data = _read_member(archive, info, limits.max_member_bytes)
            if len(data) != info.size:
                problems.append(_problem(path, "member", "truncated_member", f"{name}: {len(data)} bytes read"))
                continue
            kept_bytes += len(data)
            kept.setdefault(name, data)
            tops.append(PurePosixPath(name).parts[0])
    except TarLimitExceeded as error:
        problems.append(_problem(path, "package", error.reason, error.detail))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        problems.append(_problem(path, "package", "corrupt_archive", f"{type(error).__name__}: {error}"))
    labels = (path.name, *dict.fromkeys(tops))
    return Package(str(path), list(kept), problems, kept.__getitem__, labels)


def _read_member(archive: tarfile.TarFile, info: tarfile.TarInfo, cap: int) -> bytes:
    """At most `cap` bytes of the current member, in bounded chunks (never trusting a single huge read)."""
    handle = archive.extractfile(info)
    if handle is None:
        return b""
    return read_capped(handle, min(info.size, cap))


def read_capped(handle, limit: int, chunk: int = STREAM_BUFFER) -> bytes:
    """Read at most `limit` bytes from a binary file object, chunk by chunk; the caller checks the length."""
    parts: list[bytes] = []
    remaining = limit
    while remaining > 0:
        part = handle.read(min(chunk, remaining))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _describe(info: tarfile.TarInfo) -> str:
    return f"{info.name} -> {info.linkname}" if info.linkname else info.name


# ---------------------------------------------------------------------------------------------- folders


def _open_folder(root: Path, limits: PackageLimits) -> Package:
    """List wanted regular files (no links, no devices) under `root`; read them lazily with the same caps."""
    names: list[str] = []
    problems: list[ExtractError] = []
    tops: list[str] = []
    sizes: dict[str, int] = {}
    for count, (relative, entry) in enumerate(_walk(root, root, problems), 1):
        if count > limits.max_members:
            problems.append(_problem(root, "package", "too_many_members", f"more than {limits.max_members} files"))
            break
        info = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            reason = "device_member" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else None
            problems.append(_problem(root, "member", reason or "unsupported_member", relative))
            continue
        if not _is_wanted(relative):
            continue
        if info.st_size > limits.max_member_bytes:
            problems.append(_problem(root, "member", "member_too_large", f"{relative}: {info.st_size} bytes"))
            continue
        names.append(relative)
        sizes[relative] = info.st_size
        if "/" in relative:
            tops.append(relative.split("/", 1)[0])
    budget = _Budget(limits.max_package_bytes)

    def read(name: str) -> bytes:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            with os.fdopen(os.open(root / name, flags), "rb") as handle:
                data = read_capped(handle, limits.max_member_bytes + 1)
        except OSError as error:
            raise MemberError("unreadable_member", f"{name}: {error}") from error
        if len(data) > limits.max_member_bytes:
            raise MemberError("member_too_large", f"{name}: grew past {limits.max_member_bytes} bytes")
        budget.spend(len(data), name)
        return data

    labels = (root.name, *dict.fromkeys(tops))
    return Package(str(root), sorted(names), problems, read, labels)


def _walk(root: Path, folder: Path, problems: list[ExtractError], depth: int = 0, prefix: str = ""):
    """Yield (relative posix path, DirEntry) of non-link entries under `folder`; links are recorded, not followed."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as error:
        problems.append(_problem(root, "package", "unreadable_folder", f"{prefix or '.'}: {error}"))
        return
    for entry in entries:
        relative = prefix + entry.name
        if entry.is_symlink():
            problems.append(_problem(root, "member", "link_member", f"{relative} -> {os.readlink(entry.path)}"))
        elif entry.is_dir(follow_symlinks=False):
            if depth < MAX_FOLDER_DEPTH:
                yield from _walk(root, Path(entry.path), problems, depth + 1, relative + "/")
        else:
            yield relative, entry


@dataclass
class _Budget:
    remaining: int

    def spend(self, size: int, name: str) -> None:
        self.remaining -= size
        if self.remaining < 0:
            raise MemberError("package_too_large", f"reading {name} exceeds the package cap")


def _open_single_nxml(path: Path, limits: PackageLimits) -> Package:
    """A bare `.nxml` file is a package of one member (e.g. the CRAFT corpus, which ships no images)."""
    size = path.stat().st_size
    if size > limits.max_member_bytes:
        return _unusable(path, "member_too_large", f"{path.name}: {size} bytes")

    def read(name: str) -> bytes:
        try:
            with path.open("rb") as handle:
                data = read_capped(handle, limits.max_member_bytes + 1)
        except OSError as error:
            raise MemberError("unreadable_member", f"{name}: {error}") from error
        if len(data) > limits.max_member_bytes:
            raise MemberError("member_too_large", f"{name}: grew past {limits.max_member_bytes} bytes")
        return data

    return Package(str(path), [path.name], [], read, (path.name,))
