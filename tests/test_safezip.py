"""The safe zip reader refuses names that could leave a folder, links and sizes that could exhaust
memory, each in one sentence naming the entry or the zip, and reads no more than its limits allow;
the package file is checked with it before it is uploaded."""

from __future__ import annotations

import io
import re
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from smartid.errors import PackageError
from smartid.idm.package import MAX_PACKAGE_BYTES, read_package_file
from smartid.lab.package import demo_package
from smartid.safezip import ZipLimits, ZipRejected, deterministic_zip, entry_parts, read_entries
from tests.helpers import cost

LIMITS = ZipLimits(entries=4, total_bytes=10_000, entry_bytes=6_000, ratio=10)
WHAT = "the bundle"
# Text that deflates well below the ratio limit.
TEXT = " ".join(str(n) for n in range(300)).encode()


def _zip(*entries: tuple[str | zipfile.ZipInfo, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a duplicate name is one of the cases
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
        with zipfile.ZipFile(buffer, "w", compression=method) as archive:
            for name, body in entries:
                archive.writestr(name, body)
    return buffer.getvalue()


def _patched(data: bytes, local: int, central: int, fmt: str, value: int) -> bytes:
    """The zip with one field of its only entry changed in both headers, as a forger would."""
    patched = bytearray(data)
    struct.pack_into(fmt, patched, data.index(b"PK\x03\x04") + local, value)
    struct.pack_into(fmt, patched, data.index(b"PK\x01\x02") + central, value)
    return bytes(patched)


def _one(name: str) -> Callable[[], bytes]:
    return lambda: _zip((name, b"hi"))


def _understated() -> bytes:
    """Uncompressed size declared as 10 bytes, 5 000 bytes inside."""
    return _patched(_zip(("a.txt", b"x" * 5_000)), 22, 24, "<I", 10)


def _encrypted() -> bytes:
    return _patched(_zip(("a.txt", b"hi")), 6, 8, "<H", 0x1)


def _symlink() -> bytes:
    """An entry made on Unix whose mode says symbolic link, its body the link's target."""
    link = zipfile.ZipInfo("link")
    link.create_system = 3
    link.external_attr = (0o120777 << 16) | 0x20
    return _zip((link, b"/etc/passwd"))


# (builder of the zip, the sentence it is refused with)
REFUSED = [
    pytest.param(lambda: b"hello", "the bundle is not a zip file", id="not a zip"),
    pytest.param(
        lambda: bytes(LIMITS.upload_bytes + 1),
        f"the bundle is {LIMITS.upload_bytes + 1} bytes, more than {LIMITS.upload_bytes}",
        id="upload too large",
    ),
    pytest.param(
        lambda: _zip(*((f"{n}.txt", b"hi") for n in range(5))),
        "the bundle has 5 entries, more than 4",
        id="too many entries",
    ),
    pytest.param(
        lambda: _zip(("d/", b""), *((f"d/{n}.txt", b"hi") for n in range(4))),
        "the bundle has 5 entries, more than 4",
        id="folders count as entries",
    ),
    pytest.param(_one("a\\b.txt"), "entry 'a\\\\b.txt' contains a backslash", id="backslash"),
    pytest.param(_one("/etc/passwd"), "entry '/etc/passwd' is an absolute path", id="absolute"),
    pytest.param(_one("C:/x.txt"), "entry 'C:/x.txt' names a drive", id="drive letter"),
    pytest.param(_one("c:x.txt"), "entry 'c:x.txt' names a drive", id="drive-relative"),
    pytest.param(
        _one("../x.txt"), "entry '../x.txt' leaves the folder it is unpacked into", id="traversal"
    ),
    pytest.param(
        _one("a/../../x.txt"),
        "entry 'a/../../x.txt' leaves the folder it is unpacked into",
        id="inner traversal",
    ),
    pytest.param(
        lambda: _zip(("../", b"")),
        "entry '../' leaves the folder it is unpacked into",
        id="traversing folder",
    ),
    pytest.param(
        _one("a//b.txt"), "entry 'a//b.txt' has an empty or '.' path component", id="empty part"
    ),
    pytest.param(
        _one("./a.txt"), "entry './a.txt' has an empty or '.' path component", id="dot part"
    ),
    pytest.param(_encrypted, "entry 'a.txt' is encrypted", id="encrypted"),
    pytest.param(_symlink, "entry 'link' is a symbolic link", id="symbolic link"),
    pytest.param(
        lambda: _zip(("a.txt", b"hi"), ("a.txt", b"ho")),
        "entry 'a.txt' appears more than once",
        id="duplicate entry",
    ),
    pytest.param(
        lambda: _zip(("big.bin", bytes(6_001))),
        "entry 'big.bin' expands to more than 6000 bytes",
        id="entry too large",
    ),
    pytest.param(
        lambda: _zip(("a.bin", bytes(5_000)), ("b.bin", bytes(5_001))),
        "entry 'b.bin' expands the bundle past 10000 bytes",
        id="total too large",
    ),
    pytest.param(
        lambda: _zip(("zeros.bin", bytes(5_000)), method=zipfile.ZIP_DEFLATED),
        "entry 'zeros.bin' is compressed more than 10:1",
        id="compression ratio",
    ),
    pytest.param(
        _understated,
        "entry 'a.txt' is corrupt (Bad CRC-32 for file 'a.txt')",
        id="header understates the size",
    ),
]


@pytest.mark.parametrize(("build", "sentence"), REFUSED)
def test_unsafe_zip_is_refused_with_its_sentence(build: Callable[[], bytes], sentence: str) -> None:
    with pytest.raises(ZipRejected) as caught:
        read_entries(build(), LIMITS, what=WHAT)
    assert str(caught.value) == sentence


def test_good_zip_gives_every_file_entry_and_no_folder() -> None:
    data = _zip(
        ("a.txt", b"hello"),
        ("d/", b""),
        ("d/b.txt", TEXT),
        ("d/e/c.txt", b""),
        method=zipfile.ZIP_DEFLATED,
    )
    assert read_entries(data, LIMITS) == {
        "a.txt": b"hello",
        "d/b.txt": TEXT,
        "d/e/c.txt": b"",
    }


def test_zip_is_called_the_zip_unless_named() -> None:
    with pytest.raises(ZipRejected) as caught:
        read_entries(b"hello", LIMITS)
    assert str(caught.value) == "the zip is not a zip file"


def test_a_zip_at_every_limit_is_read() -> None:
    data = _zip(("a.bin", bytes(6_000)), ("b.bin", bytes(4_000)), ("c/", b""), ("c/d.bin", b""))
    assert sorted(read_entries(data, LIMITS)) == ["a.bin", "b.bin", "c/d.bin"]


def test_classify_sees_the_parts_of_every_entry_and_chooses_what_is_read() -> None:
    seen: list[tuple[str, list[str]]] = []

    def classify(info: zipfile.ZipInfo, parts: list[str]) -> bool:
        seen.append((info.filename, parts))
        return parts[0] == "keep"

    data = _zip(("keep/", b""), ("keep/a.txt", b"a"), ("skip/b.txt", b"b"))
    assert read_entries(data, LIMITS, classify=classify) == {"keep/a.txt": b"a", "keep/": b""}
    assert seen == [
        ("keep/", ["keep"]),
        ("keep/a.txt", ["keep", "a.txt"]),
        ("skip/b.txt", ["skip", "b.txt"]),
    ]


def test_classify_refuses_with_its_own_error_and_never_sees_an_unsafe_name() -> None:
    class LayoutError(ValueError):
        pass

    def classify(info: zipfile.ZipInfo, parts: list[str]) -> bool:
        raise LayoutError(f"entry {info.filename!r} is not expected")

    with pytest.raises(LayoutError) as caught:
        read_entries(_zip(("a.txt", b"a")), LIMITS, classify=classify)
    assert str(caught.value) == "entry 'a.txt' is not expected"
    with pytest.raises(ZipRejected, match="leaves the folder"):
        read_entries(_zip(("../a.txt", b"a")), LIMITS, classify=classify)


def test_an_entry_that_is_not_read_still_counts_against_the_limits() -> None:
    data = _zip(("a.bin", bytes(5_000)), ("skip.bin", bytes(5_001)))
    with pytest.raises(ZipRejected) as caught:
        read_entries(data, LIMITS, classify=lambda info, parts: parts[0] != "skip.bin")
    assert str(caught.value) == "entry 'skip.bin' expands the zip past 10000 bytes"


def test_reads_ask_for_one_byte_past_what_the_limits_leave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []
    read = zipfile.ZipExtFile.read

    def spy(self: zipfile.ZipExtFile, n: int | None = -1) -> bytes:
        assert n is not None
        asked.append(n)
        return read(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", spy)
    data = _zip(("a.bin", bytes(5_000)), ("b.bin", bytes(100)), ("c.bin", bytes(10)))
    read_entries(data, LIMITS)
    # per entry: min(entry limit, what the total leaves) + 1, never an unbounded read
    assert asked == [6_001, 5_001, 4_901]


@pytest.mark.parametrize(
    ("name", "parts"),
    [("a.txt", ["a.txt"]), ("d/", ["d"]), ("d/e/f.txt", ["d", "e", "f.txt"]), ("a..b", ["a..b"])],
)
def test_a_safe_name_gives_its_parts(name: str, parts: list[str]) -> None:
    assert entry_parts(name) == parts


@pytest.mark.parametrize("name", ["", "/", "a/./b", "..", "a\\b", "/a", "Z:a", "a//"])
def test_an_unsafe_name_is_refused(name: str) -> None:
    with pytest.raises(ZipRejected, match=f"^entry {re.escape(repr(name))} "):
        entry_parts(name)


def test_a_deterministic_zip_is_the_same_bytes_for_the_same_files() -> None:
    files = {"b.txt": b"second", "a/c.bin": bytes(range(256)), "a/b.txt": b"first"}
    written = deterministic_zip(files, mode=0o600)
    assert deterministic_zip(dict(reversed(list(files.items()))), mode=0o600) == written
    assert deterministic_zip(files, mode=0o644) != written
    with zipfile.ZipFile(io.BytesIO(written)) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == sorted(files)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
        assert {i.external_attr >> 16 for i in infos} == {0o600}
        assert {name: archive.read(name) for name in files} == files


def test_a_deterministic_zip_leads_with_the_entries_named_first() -> None:
    files = {"z.txt": b"z", "META-INF/MANIFEST.MF": b"m", "META-INF/A.SF": b"s", "a.txt": b"a"}
    written = deterministic_zip(files, mode=0o644, first=("META-INF/MANIFEST.MF", "missing"))
    with zipfile.ZipFile(io.BytesIO(written)) as archive:
        assert archive.namelist() == ["META-INF/MANIFEST.MF", "META-INF/A.SF", "a.txt", "z.txt"]


# --- the package file, checked before SETUP-201 uploads it ---------------------------------------

MIB = 1024 * 1024


def _package_entries() -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(demo_package("shared_credentials"))) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _package(*extra: tuple[str | zipfile.ZipInfo, bytes], drop: str = "") -> bytes:
    entries = [(n, b) for n, b in _package_entries().items() if n != drop]
    return _zip(*entries, *extra, method=zipfile.ZIP_DEFLATED)


def _bomb() -> bytes:
    """Deflated zeros: a few kB that expand to 32 MB."""
    return _package(("datapools/zeros.json", bytes(32 * MIB)))


def _with_bpmn(document: bytes) -> bytes:
    return _package(("processes/evil.bpmn20.xml", document))


_DTD = (
    b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY lol "lol">]>\n'
    b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol;</definitions>\n'
)
_EXTERNAL = (
    b'<?xml version="1.0"?>\n<!DOCTYPE d SYSTEM "http://attacker.example/d.dtd">\n'
    b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>\n'
)

# (id, the package file's bytes, the reason it is refused with)
BAD_PACKAGES = [
    pytest.param(
        lambda: b"PK\x03\x04 not really a zip", "the package file is not a zip file", id="not-a-zip"
    ),
    pytest.param(
        _bomb, "entry 'datapools/zeros.json' expands to more than 16777216 bytes", id="zip-bomb"
    ),
    pytest.param(
        lambda: _package(("../evil.json", b"{}")),
        "entry '../evil.json' leaves the folder it is unpacked into",
        id="traversal",
    ),
    pytest.param(
        lambda: _package(("/etc/cron.d/evil", b"")),
        "entry '/etc/cron.d/evil' is an absolute path",
        id="absolute",
    ),
    pytest.param(
        lambda: _package((_symlink_info("users/link.json"), b"/etc/passwd")),
        "entry 'users/link.json' is a symbolic link",
        id="symlink",
    ),
    pytest.param(
        lambda: _package(drop="META-INF/package.json"),
        "has no META-INF/package.json, the descriptor every package carries",
        id="no-descriptor",
    ),
    pytest.param(
        lambda: _package(("META-INF/package.json", b"["), drop="META-INF/package.json"),
        "entry 'META-INF/package.json' is not valid JSON (line 1, column 2)",
        id="descriptor-not-json",
    ),
    pytest.param(
        lambda: _with_bpmn(_DTD),
        "entry 'processes/evil.bpmn20.xml' has a DOCTYPE; DTDs and entities are refused",
        id="bpmn-dtd-entity",
    ),
    pytest.param(
        lambda: _with_bpmn(_EXTERNAL),
        "entry 'processes/evil.bpmn20.xml' has a DOCTYPE; DTDs and entities are refused",
        id="bpmn-external-dtd",
    ),
]


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return info


@pytest.mark.parametrize(("build", "reason"), BAD_PACKAGES)
def test_a_bad_package_file_is_refused_in_one_sentence_naming_it(
    tmp_path: Path, build: Callable[[], bytes], reason: str
) -> None:
    path = tmp_path / "SharedCredentials.zip"
    path.write_bytes(build())
    spent = cost(lambda: read_package_file(path))
    assert isinstance(spent.error, PackageError), spent.error
    assert str(spent.error) == f"{path}: {reason}"
    assert spent.seconds < 5, spent
    # The file's bytes, and at most one entry's bound on top.
    assert spent.peak_bytes < path.stat().st_size + 20 * MIB, spent


def test_a_package_file_larger_than_the_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.zip"
    with path.open("wb") as handle:
        handle.truncate(MAX_PACKAGE_BYTES + 1)  # sparse: no disk is used
    spent = cost(lambda: read_package_file(path))
    assert str(spent.error) == (
        f"{path}: is {MAX_PACKAGE_BYTES + 1} bytes, more than {MAX_PACKAGE_BYTES}"
    )
    assert spent.peak_bytes < MIB, spent


def test_the_demo_package_passes_the_check(tmp_path: Path) -> None:
    path = tmp_path / "SharedCredentials.zip"
    path.write_bytes(demo_package("shared_credentials"))
    checked = read_package_file(path)
    assert (checked.name, checked.version) == ("SharedCredentials", "1.0.0")
    assert checked.data == path.read_bytes()
