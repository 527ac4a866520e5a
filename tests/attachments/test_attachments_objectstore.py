"""The object store contract, identical for the local directory and S3 (moto over HTTP)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tracelake.config import Settings
from tracelake.objectstore import (
    InvalidKey,
    ObjectNotFound,
    ObjectStore,
    default_url,
    from_settings,
    open_object_store,
)
from tracelake.objectstore.local import LocalObjectStore
from tracelake.objectstore.s3 import S3ObjectStore


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path: Path) -> ObjectStore:
    if request.param == "file":
        return open_object_store((tmp_path / "objects").as_uri())
    bucket = request.getfixturevalue("s3_bucket")
    return open_object_store(f"s3://{bucket}/some/prefix", endpoint_url=request.getfixturevalue("moto_endpoint"))


def test_put_get_head_delete(store: ObjectStore) -> None:
    data = bytes(range(256)) * 40
    store.put("a/b/blob", data, content_type="image/png", metadata={"sha256": "x" * 64})
    assert isinstance(store, ObjectStore)
    assert store.get("a/b/blob") == data
    info = store.head("a/b/blob")
    assert info is not None and info.size == len(data) and info.content_type == "image/png"
    assert info.metadata == {"sha256": "x" * 64}
    store.put("a/b/blob", b"new", content_type="text/plain")  # overwrite
    assert store.get("a/b/blob") == b"new" and store.head("a/b/blob").content_type == "text/plain"
    store.delete("a/b/blob")
    assert store.head("a/b/blob") is None
    with pytest.raises(ObjectNotFound):
        store.get("a/b/blob")
    store.delete("a/b/blob")  # deleting twice is fine


def test_byte_ranges(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4
    store.put("r", data)
    assert store.get("r", 10, 5) == data[10:15]
    assert store.get("r", 1000) == data[1000:]
    assert store.get("r", 1020, 100) == data[1020:]
    assert store.get("r", 5000) == b""
    assert store.get("r", 3, 0) == b""
    with pytest.raises(ObjectNotFound):
        store.get("missing", 0, 10)


def test_list_by_prefix_in_key_order(store: ObjectStore) -> None:
    for key in ("b/2", "a/x/1", "a-c", "a/y", "a/x/0", "c"):
        store.put(key, key.encode())
    assert [i.key for i in store.list()] == ["a-c", "a/x/0", "a/x/1", "a/y", "b/2", "c"]
    assert [i.key for i in store.list("a/")] == ["a/x/0", "a/x/1", "a/y"]
    assert [(i.key, i.size) for i in store.list("a/x")] == [("a/x/0", 5), ("a/x/1", 5)]
    assert list(store.list("nothing/")) == []


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../../b", "a//b", "a/./b", ".hidden", "a/.b",
                                 "a\\b", "a\x00b", "a\nb", "x/"])
def test_unsafe_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        store.put(key, b"x")
    with pytest.raises(InvalidKey):
        store.head(key)


def test_local_store_stays_inside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    (tmp_path / "secret").write_text("secret")
    (root / "link").symlink_to(tmp_path)  # a symlink out of the root must not be followed
    with pytest.raises(ObjectNotFound):
        store.get("link/secret")
    store.put("k", b"v")
    assert sorted(p.name for p in root.iterdir()) == [".k.meta.json", "k", "link"]
    assert [i.key for i in store.list()] == ["k"]  # sidecars and symlinks are not objects


def test_concurrent_puts_of_the_same_key(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    data = b"z" * 100_000
    threads = [threading.Thread(target=store.put, args=("same", data)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("same") == data
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_urls_and_settings(tmp_path: Path, moto_endpoint: str) -> None:
    local = from_settings(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalObjectStore) and local.root == (tmp_path / "attachments").resolve()
    assert default_url(tmp_path) == (tmp_path / "attachments").resolve().as_uri()
    assert isinstance(open_object_store(str(tmp_path / "plain")), LocalObjectStore)
    s3 = from_settings(Settings(data_dir=tmp_path, object_store="s3://bkt/p/q/", s3_endpoint_url=moto_endpoint,
                                s3_region="eu-west-1", s3_access_key_id="a", s3_secret_access_key="b"))
    assert isinstance(s3, S3ObjectStore) and s3.bucket == "bkt" and s3.prefix == "p/q/"
    assert s3.client.meta.endpoint_url == moto_endpoint and s3.client.meta.region_name == "eu-west-1"
    q = open_object_store(f"s3://bkt?endpoint_url={moto_endpoint}&region=us-west-2")
    assert q.prefix == "" and q.client.meta.region_name == "us-west-2"
    for bad in ("ftp://x/y", "file://host/dir", "s3:///nobucket"):
        with pytest.raises(ValueError):
            open_object_store(bad)
