"""The lab's configuration packages: the demo packages, the writer and the reader that refuses
unsafe uploads with one sentence naming the entry."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import warnings
import zipfile
from collections.abc import Callable
from typing import Literal

import pytest

from smartid.lab.package import (
    MAX_ENTRIES,
    Package,
    PackageObject,
    PackageRejected,
    bind_task,
    demo_package,
    process_tasks,
    read_package,
    write_package,
)

MANIFEST = json.dumps({"name": "Evil", "version": "1.0.0"}).encode()
POOL = json.dumps({"name": "Batch order"}).encode()
BPMN_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
DEFINITIONS = '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">{}</definitions>'
PROCESS = DEFINITIONS.format('<process id="P" name="{}"><userTask id="t" name="T"/></process>')

Which = Literal["users", "shared_credentials"]

# (process, its id, the task that changes the related credentials)
PROCESSES = [
    ("Deactivate user", "UsersProcDeactivate", "Deactivate related credentials"),
    ("Reactivate user", "UsersProcReactivate", "Reactivate related credentials"),
    ("Lock user", "UsersProcLock", "Lock related credentials"),
]


def _zip(
    *entries: tuple[str | zipfile.ZipInfo, bytes], method: int = zipfile.ZIP_DEFLATED
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, body in entries:
            archive.writestr(name, body)
    return buffer.getvalue()


def _package(
    *entries: tuple[str | zipfile.ZipInfo, bytes], method: int = zipfile.ZIP_DEFLATED
) -> bytes:
    return _zip(("META-INF/package.json", MANIFEST), *entries, method=method)


def _bpmn(body: str) -> bytes:
    return (BPMN_HEAD + body).encode()


def _patched(data: bytes, local: int, central: int, fmt: str, value: int) -> bytes:
    """The zip with one field of its only entry changed in both headers, as a forger would."""
    patched = bytearray(data)
    struct.pack_into(fmt, patched, data.index(b"PK\x03\x04") + local, value)
    struct.pack_into(fmt, patched, data.index(b"PK\x01\x02") + central, value)
    return bytes(patched)


def _understated() -> bytes:
    """Uncompressed size declared as 10 bytes, 100 000 bytes inside."""
    data = _zip(("META-INF/package.json", b"{" + b" " * 100_000 + b"}"))
    return _patched(data, 22, 24, "<I", 10)


def _encrypted() -> bytes:
    return _patched(_zip(("META-INF/package.json", MANIFEST)), 6, 8, "<H", 0x1)


def _duplicate_entry() -> bytes:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
        return _package(("datapools/a.json", POOL), ("datapools/a.json", POOL))


def _entry(
    name: str | zipfile.ZipInfo, body: bytes, method: int = zipfile.ZIP_DEFLATED
) -> Callable[[], bytes]:
    """A builder of a package with the manifest and this one entry."""
    return lambda: _package((name, body), method=method)


def _bpmn_entry(xml: str) -> Callable[[], bytes]:
    return _entry("processes/x.bpmn20.xml", _bpmn(xml))


XXE = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + PROCESS.format("&e;")
BILLION_LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol0 "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    + "]>"
    + PROCESS.format("&lol9;")
)
NO_VERSION = json.dumps({"name": "X"}).encode()
BPMN_ENTRY = "'processes/x.bpmn20.xml'"

# (builder of the upload, words the reason must contain)
REJECTED = [
    pytest.param(lambda: b"hello", ["not a zip"], id="not a zip"),
    pytest.param(
        _entry(zipfile.ZipInfo("../evil.json"), POOL), ["'../evil.json'", "leaves"], id="traversal"
    ),
    pytest.param(
        _entry("cas/../../evil.json", POOL),
        ["'cas/../../evil.json'", "leaves"],
        id="inner traversal",
    ),
    pytest.param(_entry("/abs.json", POOL), ["'/abs.json'", "absolute"], id="absolute path"),
    pytest.param(_entry("cas\\evil.json", POOL), ["evil.json", "backslash"], id="backslash"),
    pytest.param(_entry("C:/evil.json", POOL), ["'C:/evil.json'", "drive"], id="drive letter"),
    pytest.param(
        _entry("datapools/bomb.json", bytes(30 << 20)),
        ["'datapools/bomb.json'", "expands"],
        id="zip bomb of 30 MB",
    ),
    pytest.param(
        _entry("datapools/zeros.json", bytes(1 << 20)),
        ["'datapools/zeros.json'", "compressed more than"],
        id="compression ratio above the limit",
    ),
    pytest.param(
        _understated, ["'META-INF/package.json'", "corrupt"], id="header understates the size"
    ),
    pytest.param(_encrypted, ["'META-INF/package.json'", "encrypted"], id="encrypted entry"),
    pytest.param(
        lambda: _package(*((f"datapools/{i}.json", POOL) for i in range(MAX_ENTRIES))),
        [f"{MAX_ENTRIES + 1} entries"],
        id="too many entries",
    ),
    pytest.param(
        lambda: _zip(("datapools/a.json", POOL)), ["META-INF/package.json"], id="no package.json"
    ),
    pytest.param(
        lambda: _zip(("META-INF/package.json", NO_VERSION)),
        ["'META-INF/package.json'", '"version"'],
        id="package.json without version",
    ),
    pytest.param(
        _entry("datapools/a.json", b"{nope"),
        ["'datapools/a.json'", "not valid JSON"],
        id="bad JSON",
    ),
    pytest.param(
        _entry("datapools/a.json", b"{}"), ["'datapools/a.json'", '"name"'], id="JSON without name"
    ),
    pytest.param(
        _entry("datapools/a.json", b"[" * 100_000, zipfile.ZIP_STORED),
        ["'datapools/a.json'", "too deeply"],
        id="deeply nested JSON",
    ),
    pytest.param(_bpmn_entry(XXE), [BPMN_ENTRY, "DOCTYPE"], id="external entity"),
    pytest.param(_bpmn_entry(BILLION_LAUGHS), [BPMN_ENTRY, "DOCTYPE"], id="billion laughs"),
    pytest.param(
        _bpmn_entry("<definitions><process"), [BPMN_ENTRY, "not well-formed"], id="malformed XML"
    ),
    pytest.param(
        _bpmn_entry(DEFINITIONS.format("")), [BPMN_ENTRY, "bpmn:process"], id="no process"
    ),
    pytest.param(
        _bpmn_entry(PROCESS.format("")), [BPMN_ENTRY, "without an id or a name"], id="unnamed"
    ),
    pytest.param(
        _bpmn_entry("<a>" * 200 + "</a>" * 200), [BPMN_ENTRY, "nests"], id="deeply nested XML"
    ),
    pytest.param(
        lambda: _package(("datapools/a.json", POOL), ("datapools/b.json", POOL)),
        ["'datapools/b.json'", "duplicates the data pool 'Batch order'", "'datapools/a.json'"],
        id="duplicate object",
    ),
    pytest.param(
        lambda: _package(
            ("processes/a.bpmn20.xml", _bpmn(PROCESS.format("A"))),
            ("processes/b.bpmn20.xml", _bpmn(PROCESS.format("B"))),
        ),
        ["'processes/b.bpmn20.xml'", "process id 'P'"],
        id="duplicate process id",
    ),
    pytest.param(
        _duplicate_entry, ["'datapools/a.json'", "more than once"], id="duplicate entry name"
    ),
    pytest.param(
        _entry("evil/a.json", POOL),
        ["'evil/a.json'", "unknown folder 'evil/'"],
        id="unknown folder",
    ),
    pytest.param(_entry("readme.txt", b"hi"), ["'readme.txt'", "outside"], id="top-level file"),
    pytest.param(
        _entry("cas/sub/a.json", POOL), ["'cas/sub/a.json'", "sub-folder"], id="nested folder"
    ),
    pytest.param(
        _entry("datapools/a.txt", POOL), ["'datapools/a.txt'", ".json"], id="wrong suffix"
    ),
]


def _kinds_and_names(package: Package) -> list[tuple[str, str]]:
    return [(obj.kind, obj.name) for obj in package.objects]


def _tasks(package: Package, process: str) -> list[tuple[str, str, str | None, str | None]]:
    found = package.named("process", process)
    assert found is not None, process
    return [(t["name"], t["type"], t["data_pool"], t["sub_process"]) for t in found.data["tasks"]]


def _bindings(bpmn: str) -> dict[str, tuple[str | None, str | None]]:
    """(data pool, sub-process) of each call activity, by task name."""
    tasks = process_tasks(bpmn)
    return {t.name: (t.data_pool, t.sub_process) for t in tasks if t.type == "callActivity"}


def test_users_package_holds_the_three_processes_without_credential_tasks() -> None:
    package = read_package(demo_package("users"))
    assert (package.name, package.version) == ("Users", "1.0.0")
    assert _kinds_and_names(package) == [
        ("process", "Deactivate user"),
        ("process", "Lock user"),
        ("process", "Reactivate user"),
    ]
    for process, _, _ in PROCESSES:
        assert _tasks(package, process) == [
            ("Select reason", "userTask", None, None),
            ("Change user state", "serviceTask", None, None),
        ]


def test_shared_credentials_package_holds_what_the_start_up_guide_edits() -> None:
    data = demo_package("shared_credentials")
    package = read_package(data)
    assert (package.name, package.version) == ("SharedCredentials", "1.0.0")
    assert package.sha256 == hashlib.sha256(data).hexdigest()
    assert _kinds_and_names(package) == [
        ("ca", "Smart ID Certificate Manager"),
        ("messaging_server", "Smart ID Messaging"),
        ("user", "hermod"),
        ("data_pool", "Batch order"),
        ("data_pool", "Credentials"),
        ("sub_process", "load credential(s)"),
        ("sub_process", "set credential status"),
        ("process", "Deactivate user"),
        ("process", "Lock user"),
        ("process", "Reactivate user"),
    ]
    ca, messaging, hermod = (package.objects[i].data for i in range(3))
    assert ca["type"] == "CM"
    assert (messaging["url"], messaging["lifespan"]) == ("", 300)
    assert "password" not in hermod
    assert package.named("process", "Archive user") is None


@pytest.mark.parametrize(("process", "process_id", "credential_task"), PROCESSES, ids=str)
def test_shared_credentials_process_has_two_unbound_credential_tasks(
    process: str, process_id: str, credential_task: str
) -> None:
    package = read_package(demo_package("shared_credentials"))
    found = package.named("process", process)
    assert found is not None
    assert found.data["id"] == process_id
    assert _bindings(found.data["bpmn"]) == {
        "Load related credentials": (None, None),
        credential_task: (None, None),
    }


@pytest.mark.parametrize("which", ["users", "shared_credentials"])
def test_demo_package_gives_identical_bytes_on_every_build(which: Which) -> None:
    assert demo_package(which) == demo_package(which)


@pytest.mark.parametrize("which", ["users", "shared_credentials"])
def test_writing_what_was_read_gives_the_same_package(which: Which) -> None:
    data = demo_package(which)
    package = read_package(data)
    rewritten = write_package(package.name, package.version, package.description, package.objects)
    assert rewritten == data  # the sources are in the writer's canonical form
    assert read_package(rewritten) == package


def test_binding_a_task_shows_in_its_tasks_and_clearing_unbinds_it() -> None:
    process = read_package(demo_package("shared_credentials")).named("process", "Lock user")
    assert process is not None
    lock, load = "Lock related credentials", "Load related credentials"
    bound = bind_task(process.data["bpmn"], lock, "Batch order", "set credential status")
    bound = bind_task(bound, load, "Credentials", "load credential(s)")
    assert _bindings(bound) == {
        load: ("Credentials", "load credential(s)"),
        lock: ("Batch order", "set credential status"),
    }
    # Nexus's batch-order form, with the prefix BPMN tools write
    assert 'calledElement="${processToCall}"' in bound
    assert '<activiti:field name="value" expression="Batch order" />' in bound
    cleared = bind_task(bound, lock, None, None)
    assert _bindings(cleared) == {load: ("Credentials", "load credential(s)"), lock: (None, None)}
    shipped = process.data["bpmn"]
    assert 'name="Lock related credentials" calledElement="${processToCall}"/>' in shipped
    assert cleared.count("<activiti:field") == 2  # only Load related credentials' two fields


def test_writer_refuses_two_objects_that_would_share_a_file() -> None:
    pools = [PackageObject("data_pool", name, {"name": name}) for name in ("A b", "a-b")]
    with pytest.raises(ValueError, match=r"'datapools/a-b\.json'"):
        write_package("P", "1", "", pools)


def test_binding_an_unknown_task_is_refused() -> None:
    process = read_package(demo_package("shared_credentials")).named("process", "Lock user")
    assert process is not None
    with pytest.raises(LookupError, match="'Select reason'"):
        bind_task(process.data["bpmn"], "Select reason", "Batch order", None)


def test_folder_entries_and_signature_files_are_accepted() -> None:
    data = _package(
        ("META-INF/", b""),
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"),
        ("datapools/", b""),
        ("datapools/batch-order.json", POOL),
    )
    assert _kinds_and_names(read_package(data)) == [("data_pool", "Batch order")]


@pytest.mark.parametrize(("build", "words"), REJECTED)
def test_unsafe_or_broken_upload_is_rejected_with_a_reason_naming_the_problem(
    build: Callable[[], bytes], words: list[str]
) -> None:
    with pytest.raises(PackageRejected) as caught:
        read_package(build())
    reason = str(caught.value)
    assert all(word in reason for word in words), reason
    assert "\n" not in reason
