"""shared/atomic.py: a file appears whole or not at all, and a failed write changes nothing."""

import os

import pytest

from shared import atomic
from shared.atomic import atomic_text, copy_file_atomic, write_text_atomic


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "new" / "folder" / "a.json"
    assert write_text_atomic(path, "one\r\n") == path  # parents made, line ends as given
    write_text_atomic(path, "two\n", fsync=True)
    assert path.read_bytes() == b"two\n"
    assert os.listdir(path.parent) == ["a.json"]


def test_the_target_appears_only_at_the_rename(tmp_path, monkeypatch):
    path = tmp_path / "a.csv"
    seen = []
    real_replace = os.replace

    def spying_replace(source, target):
        seen.append((os.path.basename(source), os.path.exists(target), open(source).read()))
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", spying_replace)
    with atomic_text(path) as handle:
        handle.write("x,y\n")
        assert not path.exists()
    assert seen == [(".a.csv.tmp", False, "x,y\n")]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_text(path) as handle:
            handle.write("half of the new")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_copy_is_byte_identical(tmp_path):
    source = tmp_path / "s.csv"
    source.write_bytes(b"\xef\xbb\xbfa,b\r\n1,2")
    target = copy_file_atomic(source, tmp_path / "landing.csv")
    assert target.read_bytes() == source.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["landing.csv", "s.csv"]
