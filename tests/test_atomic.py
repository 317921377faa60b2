"""Atomic writes (bench.atomic): a reader sees the old copy or the new one, never half of one, and
no temporary file or folder outlives the write."""

from __future__ import annotations

import os
import stat

import pytest

from bench.atomic import atomic_dir, atomic_file, write_text


class Boom(Exception):
    pass


def names(folder) -> list[str]:
    return sorted(os.listdir(folder))


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set a umask for the test; the old one comes back afterwards."""
    saved = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


# --- files ----------------------------------------------------------------------------------------


def test_write_text_creates_the_file_and_its_folders(tmp_path):
    path = tmp_path / "a" / "b" / "note.txt"
    assert write_text(path, "héllo\n") == path
    assert path.read_bytes() == "héllo\n".encode()
    assert names(path.parent) == ["note.txt"]


def test_write_text_replaces_content_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "note.txt"
    write_text(path, "old content that is longer than the new one\n")
    write_text(path, "new\r\n")
    assert path.read_bytes() == b"new\r\n"  # replaced whole, newlines as given
    assert names(tmp_path) == ["note.txt"]


def test_write_text_replaces_the_inode_not_the_bytes(tmp_path):
    path = tmp_path / "note.txt"
    write_text(path, "old")
    with open(path, encoding="utf-8") as reader:  # a reader that opened the old copy keeps it whole
        write_text(path, "new")
        assert reader.read() == "old"
    assert path.read_text() == "new"


def test_atomic_file_writes_through_the_temporary_path(tmp_path):
    path = tmp_path / "data.bin"
    with atomic_file(path) as tmp:
        assert tmp.parent == tmp_path and tmp != path
        assert not path.exists()  # nothing at the final name until the block succeeds
        tmp.write_bytes(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert names(tmp_path) == ["data.bin"]


def test_exception_in_atomic_file_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("old")
    with pytest.raises(Boom):
        with atomic_file(path) as tmp:
            tmp.write_text("half of the new")
            raise Boom()
    assert path.read_text() == "old"
    assert names(tmp_path) == ["data.txt"]


def test_exception_in_atomic_file_without_an_old_file_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        with atomic_file(tmp_path / "data.txt") as tmp:
            tmp.write_text("half")
            raise Boom()
    assert names(tmp_path) == []


def test_atomic_file_whose_block_removes_the_temporary_fails_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("old")
    with pytest.raises(FileNotFoundError):
        with atomic_file(path) as tmp:
            tmp.unlink()
    assert path.read_text() == "old"
    assert names(tmp_path) == ["data.txt"]


# --- folders --------------------------------------------------------------------------------------


def test_atomic_dir_builds_a_folder_and_moves_it_into_place(tmp_path):
    final = tmp_path / "deep" / "run"
    with atomic_dir(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".run.tmp-")
        assert not final.exists()
        (tmp / "run.json").write_text("{}")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.txt").write_text("x")
    assert (final / "run.json").read_text() == "{}"
    assert (final / "sub" / "x.txt").read_text() == "x"
    assert names(final.parent) == ["run"]


def test_atomic_dir_replaces_an_existing_folder_whole(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    (final / "stale.txt").write_text("from the old run")
    (final / "shared.txt").write_text("old")
    (final / "old_sub").mkdir()
    (final / "old_sub" / "y").write_text("y")
    with atomic_dir(final) as tmp:
        (tmp / "shared.txt").write_text("new")
    assert names(final) == ["shared.txt"]
    assert (final / "shared.txt").read_text() == "new"
    assert names(tmp_path) == ["run"]  # no .run.tmp-* nor .run.old-* left


def test_exception_in_atomic_dir_leaves_the_old_folder_intact(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    (final / "a.txt").write_text("old")
    with pytest.raises(Boom):
        with atomic_dir(final) as tmp:
            (tmp / "a.txt").write_text("new")
            (tmp / "b.txt").write_text("new")
            raise Boom()
    assert names(final) == ["a.txt"]
    assert (final / "a.txt").read_text() == "old"
    assert names(tmp_path) == ["run"]


def test_exception_in_atomic_dir_without_an_old_folder_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        with atomic_dir(tmp_path / "run") as tmp:
            (tmp / "a.txt").write_text("new")
            raise Boom()
    assert names(tmp_path) == []


def test_atomic_dir_without_replace_keeps_the_existing_folder(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    (final / "a.txt").write_text("first")
    with atomic_dir(final, replace=False) as tmp:
        (tmp / "a.txt").write_text("second")
        (tmp / "b.txt").write_text("second")
    assert names(final) == ["a.txt"]
    assert (final / "a.txt").read_text() == "first"
    assert names(tmp_path) == ["run"]


def test_atomic_dir_without_replace_creates_a_missing_folder(tmp_path):
    final = tmp_path / "run"
    with atomic_dir(final, replace=False) as tmp:
        (tmp / "a.txt").write_text("only")
    assert (final / "a.txt").read_text() == "only"
    assert names(tmp_path) == ["run"]


def test_atomic_dir_twice_in_a_row_keeps_only_the_last(tmp_path):
    final = tmp_path / "run"
    for text in ("one", "two", "three"):
        with atomic_dir(final) as tmp:
            (tmp / f"{text}.txt").write_text(text)
    assert names(final) == ["three.txt"]
    assert names(tmp_path) == ["run"]


# --- permissions ----------------------------------------------------------------------------------


def test_folders_and_files_are_readable_by_others_under_umask_022(tmp_path, umask):
    umask(0o022)
    final = tmp_path / "shared" / "run"
    with atomic_dir(final) as tmp:
        write_text(tmp / "run.json", "{}")
        with atomic_file(tmp / "arrays.npz") as t:
            t.write_bytes(b"npz")
    assert mode(final) == 0o755  # mkdtemp alone would give 0o700
    assert mode(final.parent) == 0o755  # the parent made on the way
    assert mode(final / "run.json") == 0o644  # mkstemp alone would give 0o600
    assert mode(final / "arrays.npz") == 0o644
    path = write_text(tmp_path / "top.txt", "x")
    assert mode(path) == 0o644


def test_modes_follow_a_stricter_umask(tmp_path, umask):
    umask(0o027)
    final = tmp_path / "run"
    with atomic_dir(final) as tmp:
        write_text(tmp / "run.json", "{}")
    assert mode(final) == 0o750
    assert mode(final / "run.json") == 0o640


def test_atomic_writes_leave_the_umask_as_it_was(tmp_path, umask):
    umask(0o027)
    write_text(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d"):
        pass
    assert os.umask(0o027) == 0o027
