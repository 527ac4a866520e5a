"""Object store on a local directory (the default, under the data directory).

Each object is a file at ``<root>/<key>``; its content type and metadata live in a sidecar
``.<name>.meta.json`` beside it. Writes go to a temporary dot-file first and are renamed into
place, sidecar before blob, so a visible blob always has its metadata and readers never see a
half-written file. Dot-files are invisible to ``list`` and unreachable by keys.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from tracelake.objectstore.base import ObjectInfo, ObjectNotFound, check_key, check_prefix


class LocalObjectStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # check_key already rules out '..'; this also refuses a symlink pointing outside.
        if not path.is_relative_to(self.root):
            raise ObjectNotFound(key)
        return path

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(f".{path.name}.meta.json")

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
            metadata: Mapping[str, str] | None = None) -> None:
        path = self._path(key)
        if not path.parent.is_dir():  # a stat is much cheaper than mkdir on most file systems
            path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"content_type": content_type, "metadata": dict(metadata or {})}
        self._write_atomic(self._sidecar(path), json.dumps(meta).encode())
        self._write_atomic(path, bytes(data))

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                f.seek(offset)
                return f.read() if length is None else f.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            size = os.stat(path).st_size
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        try:
            meta = json.loads(self._sidecar(path).read_bytes())
        except (FileNotFoundError, ValueError):
            meta = {}
        return ObjectInfo(key, size, meta.get("content_type") or "application/octet-stream",
                          meta.get("metadata") or {})

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        # Walk only the directory the prefix names, then filter by the full prefix.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        if start.is_dir():
            yield from self._walk(start, f"{base}/" if base else "", prefix)

    def _walk(self, directory: Path, key_prefix: str, prefix: str) -> Iterator[ObjectInfo]:
        # Entries sorted as their keys sort ('dir/' for a directory), so keys come out in order.
        entries = [e for e in os.scandir(directory) if not e.name.startswith(".")]
        entries.sort(key=lambda e: e.name + "/" if e.is_dir(follow_symlinks=False) else e.name)
        for entry in entries:
            key = key_prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk(Path(entry.path), key + "/", prefix)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                yield ObjectInfo(key, entry.stat(follow_symlinks=False).st_size)

    def delete(self, key: str) -> None:
        path = self._path(key)
        for p in (path, self._sidecar(path)):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"
