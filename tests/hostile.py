"""Builders of hostile (and benign) PMC-like packages for tests; everything is written under a given tmp dir.

Reusable by any test: `article_xml` makes a small JATS article, `write_tar_gz` writes arbitrary tar members
(absolute or `..` names, links, devices, members that inflate to gigabytes without ever holding them in memory),
and `HOSTILE_PACKAGES` maps a name to a builder `(tmp_dir) -> package path`.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ZERO_CHUNK = 16 << 20  # one gzip member of this many zero bytes is written again and again for huge members
GIB = 1 << 30


# ---------------------------------------------------------------------------------------------- images


def jpeg_bytes(size: tuple[int, int] = (64, 48), mode: str = "RGB", seed: int = 0) -> bytes:
    """A small noisy JPEG (noise so that two seeds give different hashes)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "CMYK": 4}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def image_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def cmyk_tiff_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    return image_bytes(Image.fromarray(pixels, "CMYK"), "TIFF")


def truncated_jpeg_bytes() -> bytes:
    """A real JPEG cut in half: Pillow must report it truncated."""
    data = jpeg_bytes((200, 160), seed=3)
    return data[: len(data) // 2]


def png_bomb_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG of a few hundred bytes whose header declares `width` x `height` pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------------------------------------- XML


@dataclass(frozen=True)
class Fig:
    """A `<fig>` for `article_xml`: graphics as hrefs; `caption=None` gives a figure without caption."""

    fig_id: str
    hrefs: tuple[str, ...] = ()
    caption: str | None = "A caption."
    label: str = "Figure"


def article_xml(
    pmcid: str | None = "PMC1",
    figs: tuple[Fig, ...] = (Fig("F1", ("f1",)),),
    body: str = '<p>As shown in <xref ref-type="fig" rid="F1">Figure 1</xref>.</p>',
    doctype: str = "",
    caption_extra: str = "",
) -> bytes:
    """A small valid JATS article; `doctype` and `caption_extra` let tests inject entities."""
    ids = f'<article-id pub-id-type="pmc">{pmcid[3:]}</article-id>' if pmcid else ""
    fig_xml = "".join(
        f'<fig id="{fig.fig_id}"><label>{fig.label}</label>'
        + (f"<caption><p>{fig.caption}{caption_extra}</p></caption>" if fig.caption is not None else "")
        + "".join(f'<graphic xlink:href="{href}"/>' for href in fig.hrefs)
        + "</fig>"
        for fig in figs
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        + doctype
        + '<article xmlns:xlink="http://www.w3.org/1999/xlink" article-type="research-article"><front>'
        + "<journal-meta><journal-title>Test J</journal-title></journal-meta>"
        + f"<article-meta>{ids}<title-group><article-title>Hostile test</article-title></title-group>"
        + '<permissions><license xlink:href="http://creativecommons.org/licenses/by/4.0/"/></permissions>'
        + f"</article-meta></front><body><sec><title>Results</title>{body}{fig_xml}</sec></body></article>"
    ).encode()


XXE_DOCTYPE = '<!DOCTYPE article [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
BILLION_LAUGHS_DOCTYPE = (
    '<!DOCTYPE article [<!ENTITY lol "lol">'
    + '<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(2, 10))
    + "]>"
)


# ---------------------------------------------------------------------------------------------- tar.gz


@dataclass(frozen=True)
class Member:
    """A tar member: `data`, or `zero_fill` bytes of zeros streamed without being held in memory."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    zero_fill: int = 0


def write_tar_gz(path: Path, members: list[Member]) -> Path:
    """Write members exactly as given (no name checks): a gzip stream of several gzip members.

    A `zero_fill` member's data is written as copies of one precompressed 16 MiB block of zeros, so a member
    that inflates to 1.5 GiB takes ~1.5 MB on disk and no memory to build.
    """
    zero_block = gzip.compress(b"\0" * ZERO_CHUNK, compresslevel=9)
    with path.open("wb") as out:
        pending = io.BytesIO()
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.type
            info.linkname = member.linkname
            info.mode = 0o644
            info.size = member.zero_fill or (len(member.data) if member.type == tarfile.REGTYPE else 0)
            pending.write(info.tobuf(format=tarfile.GNU_FORMAT))
            if member.zero_fill:
                if member.zero_fill % ZERO_CHUNK:
                    raise ValueError("zero_fill must be a multiple of 16 MiB")
                out.write(gzip.compress(pending.getvalue()))
                pending = io.BytesIO()
                for _ in range(member.zero_fill // ZERO_CHUNK):
                    out.write(zero_block)
            else:
                pending.write(member.data)
                pending.write(b"\0" * (-len(member.data) % tarfile.BLOCKSIZE))
        pending.write(b"\0" * (2 * tarfile.BLOCKSIZE))
        out.write(gzip.compress(pending.getvalue()))
    return path


def _package(tmp: Path, name: str, members: list[Member]) -> Path:
    return write_tar_gz(tmp / f"{name}.tar.gz", members)


def good_package(tmp: Path, pmcid: str = "PMC1000001") -> Path:
    """A benign new-layout package: one figure with a JPEG and its .gif thumbnail."""
    top = pmcid
    return _package(
        tmp,
        pmcid,
        [
            Member(f"{top}/article.nxml", article_xml(pmcid)),
            Member(f"{top}/f1.jpg", jpeg_bytes()),
            Member(f"{top}/f1.gif", image_bytes(Image.new("P", (30, 22)), "GIF")),
        ],
    )


def traversal_package(tmp: Path) -> Path:
    """A good pair plus stray members named `../../evil.jpg` and `/etc/evil.nxml`."""
    return _package(
        tmp,
        "PMC1000002",
        [
            Member("../../evil.jpg", jpeg_bytes(seed=9)),
            Member("/etc/evil.nxml", b"<article/>"),
            Member("PMC1000002/a.nxml", article_xml("PMC1000002")),
            Member("PMC1000002/f1.jpg", jpeg_bytes()),
            Member("PMC1000002/../../../tmp/evil2.jpg", jpeg_bytes(seed=8)),
        ],
    )


def symlinked_image_package(tmp: Path) -> Path:
    """The figure's image is a symlink (to /etc/passwd) and a hard link: neither may be followed."""
    return _package(
        tmp,
        "PMC1000003",
        [
            Member("PMC1000003/a.nxml", article_xml("PMC1000003")),
            Member("PMC1000003/f1.jpg", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
            Member("PMC1000003/f1.png", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
            Member("PMC1000003/dev.jpg", type=tarfile.CHRTYPE),
        ],
    )


def xxe_package(tmp: Path) -> Path:
    """An external entity pointing at /etc/hostname, used in a caption."""
    xml = article_xml("PMC1000004", doctype=XXE_DOCTYPE, caption_extra=" &x;")
    return _package(tmp, "PMC1000004", [Member("PMC1000004/a.nxml", xml), Member("PMC1000004/f1.jpg", jpeg_bytes())])


def billion_laughs_package(tmp: Path) -> Path:
    xml = article_xml("PMC1000005", doctype=BILLION_LAUGHS_DOCTYPE, caption_extra=" &lol9;")
    return _package(tmp, "PMC1000005", [Member("PMC1000005/a.nxml", xml), Member("PMC1000005/f1.jpg", jpeg_bytes())])


def png_bomb_package(tmp: Path) -> Path:
    return _package(
        tmp,
        "PMC1000006",
        [Member("PMC1000006/a.nxml", article_xml("PMC1000006")), Member("PMC1000006/f1.png", png_bomb_bytes())],
    )


def truncated_jpeg_package(tmp: Path) -> Path:
    return _package(
        tmp,
        "PMC1000007",
        [Member("PMC1000007/a.nxml", article_xml("PMC1000007")), Member("PMC1000007/f1.jpg", truncated_jpeg_bytes())],
    )


def malformed_nxml_package(tmp: Path) -> Path:
    return _package(
        tmp,
        "PMC1000008",
        [
            Member("PMC1000008/a.nxml", b"<article><front><article-meta>unclosed"),
            Member("PMC1000008/f1.jpg", jpeg_bytes()),
        ],
    )


def gzip_bomb_package(tmp: Path) -> Path:
    """`f1.jpg` inflates to 1.5 GiB (~1.5 MB on disk); a second figure after it is fine."""
    figs = (Fig("F1", ("f1",)), Fig("F2", ("f2",)))
    return _package(
        tmp,
        "PMC1000009",
        [
            Member("PMC1000009/a.nxml", article_xml("PMC1000009", figs=figs)),
            Member("PMC1000009/f1.jpg", zero_fill=3 * GIB // 2),
            Member("PMC1000009/f2.jpg", jpeg_bytes(seed=2)),
        ],
    )


def nxml_bomb_package(tmp: Path) -> Path:
    """The article itself inflates to 1.5 GiB: the package has nothing to parse."""
    return _package(tmp, "PMC1000010", [Member("PMC1000010/a.nxml", zero_fill=3 * GIB // 2)])


def oversized_header_package(tmp: Path) -> Path:
    """A pax extended header declaring 64 MiB, which tarfile would read whole into memory."""
    return _package(
        tmp,
        "PMC1000011",
        [
            Member("PMC1000011/a.nxml", article_xml("PMC1000011")),
            Member("pax", type=tarfile.XHDTYPE, zero_fill=64 << 20),
        ],
    )


def cmyk_tiff_package(tmp: Path) -> Path:
    figs = (Fig("F1", ("f1.tif",)),)
    return _package(
        tmp,
        "PMC1000012",
        [
            Member("PMC1000012/a.nxml", article_xml("PMC1000012", figs=figs)),
            Member("PMC1000012/f1.tif", cmyk_tiff_bytes()),
        ],
    )


def not_a_gzip_package(tmp: Path) -> Path:
    path = tmp / "PMC1000013.tar.gz"
    path.write_bytes(b"\x1f\x8b this is not gzip data at all")
    return path


def member_bomb_package(tmp: Path, count: int = 1_000_000, pmcid: str = "PMC1000020") -> Path:
    """`count` empty members (a tar header bomb: ~4.8 MB gzipped for a million), built in a fraction of a second.

    1024 headers with distinct names are compressed once as one gzip member, which is written again and again
    (a gzip file may hold many members); the rest and the end-of-archive blocks close the stream.
    """

    def headers(n: int) -> bytes:
        out = io.BytesIO()
        for i in range(n):
            info = tarfile.TarInfo(f"{pmcid}/m{i:04d}.txt")
            info.mode, info.mtime = 0o644, 0
            out.write(info.tobuf(tarfile.USTAR_FORMAT))
        return out.getvalue()

    per_block = 1024
    block = gzip.compress(headers(per_block), compresslevel=9, mtime=0)
    full, rest = divmod(count, per_block)
    path = tmp / f"{pmcid}.tar.gz"
    with path.open("wb") as out:
        for _ in range(full):
            out.write(block)
        out.write(gzip.compress(headers(rest) + b"\0" * tarfile.RECORDSIZE, mtime=0))
    return path


def measure_in_subprocess(statement: str, **env: str) -> dict:
    """Run `statement` (which sets `result`) in a fresh interpreter after its imports; return
    {"result", "seconds" (the statement alone), "peak_rss_mb" (the whole process)}."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, re, time\n"
        "from workbench.extract.article import extract_package\n"
        "from workbench.acquire.downloader import verify_package\n"
        "from workbench.retry import FetchError\n"
        "started = time.monotonic()\n"
        f"{statement}\n"
        "print(json.dumps({'result': result, 'seconds': time.monotonic() - started,"
        # VmHWM: this process's own peak (ru_maxrss would carry over a large parent's across fork/exec)
        " 'peak_rss_mb': int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) / 1024}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


HOSTILE_PACKAGES: dict[str, Callable[[Path], Path]] = {
    "traversal": traversal_package,
    "symlinked_image": symlinked_image_package,
    "xxe": xxe_package,
    "billion_laughs": billion_laughs_package,
    "png_bomb": png_bomb_package,
    "truncated_jpeg": truncated_jpeg_package,
    "malformed_nxml": malformed_nxml_package,
    "gzip_bomb": gzip_bomb_package,
    "nxml_bomb": nxml_bomb_package,
    "oversized_header": oversized_header_package,
    "cmyk_tiff": cmyk_tiff_package,
    "not_a_gzip": not_a_gzip_package,
    "member_bomb": member_bomb_package,
}
