"""files.* through the real SDK: every byte goes to and from the sandbox container."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from e2b import FileNotFoundException, FileType, InvalidArgumentException, SandboxException

pytestmark = [pytest.mark.e2b, pytest.mark.docker]


def test_write_read_text_and_bytes(sbx: Any) -> None:
    info = sbx.files.write("/home/user/notes/a.txt", "héllo")  # parent dirs are created
    assert info.path == "/home/user/notes/a.txt" and info.name == "a.txt"
    assert sbx.files.read("/home/user/notes/a.txt") == "héllo"
    payload = bytes(range(256)) * 10
    sbx.files.write("/tmp/blob.bin", payload)
    assert bytes(sbx.files.read("/tmp/blob.bin", format="bytes")) == payload
    # Relative paths are relative to the user's home, as on E2B.
    sbx.files.write("rel.txt", "r")
    assert sbx.files.read("/home/user/rel.txt") == "r"


def test_files_live_inside_the_sandbox(sbx: Any) -> None:
    sbx.files.write("/tmp/from-sdk.txt", "inside")
    assert sbx.run_code("open('/tmp/from-sdk.txt').read()").text == "inside"
    # A marker only the sandbox has: the host's /tmp never got it.
    marker = f"/tmp/selfbox-e2b-{os.urandom(6).hex()}"
    sbx.files.write(marker, "x")
    assert sbx.files.exists(marker) and not os.path.exists(marker)
    sbx.run_code("open('/tmp/from-code.txt', 'w').write('made by code')")
    assert sbx.files.read("/tmp/from-code.txt") == "made by code"
    entry = sbx.files.get_info("/tmp/from-code.txt")
    assert entry.owner == "user" and entry.type == FileType.FILE and entry.size == 12


def test_large_file_round_trip_in_chunks(sbx: Any) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several runner chunks each way
    sbx.files.write("/tmp/large.bin", payload)
    assert bytes(sbx.files.read("/tmp/large.bin", format="bytes")) == payload
    streamed = b"".join(sbx.files.read("/tmp/large.bin", format="stream"))
    assert streamed == payload


def test_octet_stream_and_gzip_uploads(sbx: Any) -> None:
    sbx.files.write("/tmp/stream.txt", io.BytesIO(b"from a file object"))  # octet-stream
    assert sbx.files.read("/tmp/stream.txt") == "from a file object"
    sbx.files.write("/tmp/gz.txt", b"zipped " * 1000, gzip=True)
    assert sbx.files.read("/tmp/gz.txt") == "zipped " * 1000


def test_write_files_multipart_several(sbx: Any) -> None:
    infos = sbx.files.write_files([{"path": "/tmp/m/one.txt", "data": "1"},
                                   {"path": "/tmp/m/two.txt", "data": b"2"}])
    assert sorted(i.path for i in infos) == ["/tmp/m/one.txt", "/tmp/m/two.txt"]
    assert sbx.files.read("/tmp/m/two.txt") == "2"


def test_list_exists_make_dir_rename_remove(sbx: Any) -> None:
    assert sbx.files.make_dir("/tmp/d/sub") is True
    assert sbx.files.make_dir("/tmp/d/sub") is False  # already there
    sbx.files.write("/tmp/d/a.txt", "a")
    sbx.files.write("/tmp/d/sub/b.txt", "bb")
    names = {(e.name, e.type) for e in sbx.files.list("/tmp/d")}
    assert names == {("a.txt", FileType.FILE), ("sub", FileType.DIR)}
    deep = {e.path for e in sbx.files.list("/tmp/d", depth=2)}
    assert deep == {"/tmp/d/a.txt", "/tmp/d/sub", "/tmp/d/sub/b.txt"}

    assert sbx.files.exists("/tmp/d/a.txt") is True
    assert sbx.files.exists("/tmp/d/nope") is False

    moved = sbx.files.rename("/tmp/d/a.txt", "/home/user/moved.txt")  # across file systems
    assert moved.path == "/home/user/moved.txt"
    assert sbx.files.exists("/tmp/d/a.txt") is False
    assert sbx.files.read("/home/user/moved.txt") == "a"

    sbx.files.remove("/tmp/d")  # a directory, recursively
    assert sbx.files.exists("/tmp/d") is False


def test_missing_files_raise_file_not_found(sbx: Any) -> None:
    with pytest.raises(FileNotFoundException):
        sbx.files.read("/tmp/does-not-exist")
    with pytest.raises(FileNotFoundException):
        sbx.files.list("/tmp/does-not-exist")
    with pytest.raises(FileNotFoundException):
        sbx.files.get_info("/tmp/does-not-exist")
    with pytest.raises(FileNotFoundException):
        sbx.files.remove("/tmp/does-not-exist")
    with pytest.raises(FileNotFoundException):
        sbx.files.rename("/tmp/does-not-exist", "/tmp/x")


def test_read_only_places_are_refused(sbx: Any) -> None:
    # The root file system is read-only and the user is not root: a clear error, not a write.
    with pytest.raises(SandboxException):
        sbx.files.write("/etc/selfbox-test", "x")
    with pytest.raises((SandboxException, InvalidArgumentException)):
        sbx.files.read("/tmp")  # a directory


def test_upload_over_the_size_limit_names_the_limit(sbx: Any) -> None:
    too_big = b"x" * (17 * 1024 * 1024)  # the test server keeps the 16 MiB default
    with pytest.raises(SandboxException, match="SELFBOX_MAX_REQUEST_BODY_BYTES"):
        sbx.files.write("/tmp/too-big.bin", too_big)


def test_full_disk_raises_not_enough_space(sbx: Any) -> None:
    from e2b import NotEnoughSpaceException

    # /tmp is a tmpfs of the sandbox's disk_mb (256 MiB by default): fill it up first.
    sbx.commands.run("dd if=/dev/zero of=/tmp/fill bs=1M count=400 2>/dev/null || true")
    with pytest.raises(NotEnoughSpaceException):
        sbx.files.write("/tmp/one-more.bin", b"x" * (2 * 1024 * 1024))
    sbx.files.remove("/tmp/fill")
    sbx.files.write("/tmp/one-more.bin", b"x" * (2 * 1024 * 1024))  # room again


def test_special_files_are_refused_not_hung(sbx: Any) -> None:
    sbx.commands.run("mkfifo /tmp/pipe")
    with pytest.raises(InvalidArgumentException):
        sbx.files.read("/tmp/pipe")
    with pytest.raises(InvalidArgumentException):
        sbx.files.write("/tmp/pipe", "x")
    assert sbx.files.read("/proc/self/status").startswith("Name:")  # size 0, yet read


def test_signed_download_and_upload_urls(sbx: Any) -> None:
    import httpx

    sbx.files.write("/tmp/shared.txt", "via a signed URL")
    url = sbx.download_url("/tmp/shared.txt", use_signature_expiration=60)
    assert "signature=v1_" in url
    # A bare GET, as a browser would do it: no headers, no API key, no access token.
    assert httpx.get(url).text == "via a signed URL"
    assert httpx.get(url.replace("shared.txt", "other.txt")).status_code == 401  # signed path
    upload = sbx.upload_url("/tmp/uploaded.txt")
    assert httpx.post(upload, files={"file": ("uploaded.txt", b"up")}).status_code == 200
    assert sbx.files.read("/tmp/uploaded.txt") == "up"
    assert httpx.post(url, files={"file": ("x", b"x")}).status_code == 401  # read-only URL
    two = [("file", ("/tmp/a", b"a")), ("file", ("/home/user/.profile", b"b"))]
    assert httpx.post(upload, files=two).status_code == 400  # only the signed path
    expired = sbx.download_url("/tmp/shared.txt", use_signature_expiration=-10)
    assert httpx.get(expired).status_code == 401


def test_watch_dir_polled(sbx: Any) -> None:
    import time

    from e2b import FilesystemEventType

    sbx.files.make_dir("/tmp/w/sub")
    handle = sbx.files.watch_dir("/tmp/w", recursive=True)
    sbx.files.write("/tmp/w/new.txt", "1")
    sbx.commands.run("echo more >> /tmp/w/new.txt; mkdir /tmp/w/sub/deeper; "
                     "touch /tmp/w/sub/deeper/x; mv /tmp/w/new.txt /tmp/w/moved.txt; "
                     "rm /tmp/w/moved.txt")
    seen: set[tuple[str, FilesystemEventType]] = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
            ("sub/deeper/x", FilesystemEventType.CREATE) not in seen
            or ("moved.txt", FilesystemEventType.REMOVE) not in seen):
        seen |= {(e.name, e.type) for e in handle.get_new_events()}
        time.sleep(0.2)
    handle.stop()
    assert ("new.txt", FilesystemEventType.CREATE) in seen
    assert ("new.txt", FilesystemEventType.WRITE) in seen
    assert ("new.txt", FilesystemEventType.RENAME) in seen
    assert ("moved.txt", FilesystemEventType.CREATE) in seen
    assert ("moved.txt", FilesystemEventType.REMOVE) in seen
    assert ("sub/deeper", FilesystemEventType.CREATE) in seen
    assert ("sub/deeper/x", FilesystemEventType.CREATE) in seen  # a directory made later
    with pytest.raises(FileNotFoundException):
        sbx.files.watch_dir("/tmp/no-such-dir")
