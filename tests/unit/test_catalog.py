"""The catalog: path checks, what lies inside the root, what may be served, open + fstat."""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.storage import openat2
from service.storage.catalog import Catalog, FolderEntry, OpenFile
from service.web.errors import (
    BadPathError,
    CatalogError,
    ForbiddenError,
    IsFolderError,
    NotFoundError,
    StorageError,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A data root with a file, a nested file, a folder and a hidden file."""
    folder = tmp_path / "data"
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"alpha\n")
    (folder / "sub" / "b.bin").write_bytes(b"\x00\x01\x02\x03")
    (folder / "sub" / "deeper" / "c.txt").write_bytes(b"see")
    (folder / ".hidden").write_bytes(b"secret")
    (folder / "sub" / ".env").write_bytes(b"TOKEN=1")
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file next to the data root, never inside it."""
    path = tmp_path / "outside.txt"
    path.write_bytes(b"outside the root")
    return path


@pytest.fixture
def catalog(root: Path) -> Catalog:
    return Catalog(root)


def open_fds() -> int:
    gc.collect()  # a catalog no longer used still holds its root until collected
    return len(os.listdir("/proc/self/fd"))


def read_all(opened: OpenFile) -> bytes:
    assert opened.fd is not None
    return os.pread(opened.fd, opened.representation.size + 1, 0)


@pytest.fixture
def opened_files() -> Iterator[list[OpenFile]]:
    """Files opened by a test, closed afterwards whatever happens."""
    files: list[OpenFile] = []
    yield files
    for file in files:
        file.close()


def open_file(catalog: Catalog, url_path: str, files: list[OpenFile]) -> OpenFile:
    opened = catalog.open_file(url_path)
    files.append(opened)
    return opened


# --- valid paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url_path", "content"),
    [("a.txt", b"alpha\n"), ("sub/b.bin", b"\x00\x01\x02\x03"), ("sub/deeper/c.txt", b"see")],
)
def test_a_valid_path_opens_the_file_it_names(
    catalog: Catalog, opened_files: list[OpenFile], url_path: str, content: bytes
) -> None:
    opened = open_file(catalog, url_path, opened_files)
    assert read_all(opened) == content
    assert opened.representation.name == url_path.rsplit("/", 1)[-1]


def test_names_with_spaces_and_unicode_are_ordinary_files(
    root: Path, catalog: Catalog, opened_files: list[OpenFile]
) -> None:
    (root / "my file ü.txt").write_bytes(b"u")
    assert read_all(open_file(catalog, "my file ü.txt", opened_files)) == b"u"


def test_the_root_is_resolved_to_its_real_path(tmp_path: Path, root: Path) -> None:
    (tmp_path / "link").symlink_to(root)
    assert Catalog(tmp_path / "link").root == os.path.realpath(root)


def test_a_data_root_reached_through_a_symlink_still_serves_its_files(
    tmp_path: Path, root: Path, opened_files: list[OpenFile]
) -> None:
    (tmp_path / "link").symlink_to(root)
    opened = open_file(Catalog(tmp_path / "link"), "a.txt", opened_files)
    assert read_all(opened) == b"alpha\n"


def test_a_symlink_to_a_file_inside_the_root_is_followed(
    root: Path, catalog: Catalog, opened_files: list[OpenFile]
) -> None:
    (root / "alias.txt").symlink_to("sub/deeper/c.txt")
    opened = open_file(catalog, "alias.txt", opened_files)
    assert read_all(opened) == b"see"
    # The name used for Content-Type/Disposition is the target's own name.
    assert opened.representation.name == "c.txt"


def test_a_symlinked_folder_inside_the_root_is_traversed(
    root: Path, catalog: Catalog, opened_files: list[OpenFile]
) -> None:
    (root / "shortcut").symlink_to(root / "sub" / "deeper", target_is_directory=True)
    assert read_all(open_file(catalog, "shortcut/c.txt", opened_files)) == b"see"


def test_a_path_without_symlinks_is_opened_without_realpath(
    catalog: Catalog, opened_files: list[OpenFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-request cost: one lstat per segment, not a realpath walk from /."""
    lstats: list[str] = []
    real_lstat = os.lstat

    def counting_lstat(path: str, *args: object, **kwargs: object) -> os.stat_result:
        lstats.append(path)
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    def no_realpath(*args: object, **kwargs: object) -> str:
        raise AssertionError("realpath on a path without symlinks")

    monkeypatch.setattr(os.path, "realpath", no_realpath)
    monkeypatch.setattr(os, "lstat", counting_lstat)
    assert read_all(open_file(catalog, "sub/deeper/c.txt", opened_files)) == b"see"
    assert [path.removeprefix(catalog.root) for path in lstats] == [
        "/sub",
        "/sub/deeper",
        "/sub/deeper/c.txt",
    ]


# --- bad paths: 400 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url_path",
    [
        "..",
        "../outside.txt",
        "sub/../a.txt",
        "sub/..",
        ".",
        "./a.txt",
        "sub/./b.bin",
        "/a.txt",
        "sub//b.bin",
        "a.txt/",
        "sub/",
        "a\x00.txt",
        "\x00",
        "sub\\b.bin",
        "..\\outside.txt",
    ],
)
def test_traversal_dot_and_empty_segments_nul_and_backslashes_are_bad_paths(
    catalog: Catalog, url_path: str
) -> None:
    with pytest.raises(BadPathError):
        catalog.open_file(url_path)


@pytest.mark.parametrize("url_path", ["..", "../", "sub/../", "./", "sub//", "a\x00/"])
def test_listing_a_bad_path_is_a_bad_path_error(catalog: Catalog, url_path: str) -> None:
    with pytest.raises(BadPathError):
        catalog.list_folder(url_path)


def test_names_that_merely_contain_dots_are_fine(
    root: Path, catalog: Catalog, opened_files: list[OpenFile]
) -> None:
    (root / "a..b").write_bytes(b"dots")
    (root / "...x").write_bytes(b"x")  # hidden: starts with a dot
    assert read_all(open_file(catalog, "a..b", opened_files)) == b"dots"
    with pytest.raises(NotFoundError):
        catalog.open_file("...x")


# --- not found: 404 ----------------------------------------------------------------------


@pytest.mark.parametrize("url_path", ["missing.txt", "sub/missing", "nothing/here.txt"])
def test_a_missing_file_is_not_found(catalog: Catalog, url_path: str) -> None:
    with pytest.raises(NotFoundError):
        catalog.open_file(url_path)


def test_a_file_used_as_a_folder_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError):
        catalog.open_file("a.txt/more")


@pytest.mark.parametrize("url_path", [".hidden", "sub/.env", ".git/config"])
def test_dotfiles_are_hidden_by_default(catalog: Catalog, url_path: str) -> None:
    with pytest.raises(NotFoundError):
        catalog.open_file(url_path)


def test_files_inside_a_hidden_folder_are_hidden(root: Path, catalog: Catalog) -> None:
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_bytes(b"ref: main")
    with pytest.raises(NotFoundError):
        catalog.open_file(".git/HEAD")
    with pytest.raises(NotFoundError):
        catalog.list_folder(".git/")


def test_dotfiles_are_served_when_serve_hidden_is_on(
    root: Path, opened_files: list[OpenFile]
) -> None:
    catalog = Catalog(root, serve_hidden=True)
    assert read_all(open_file(catalog, ".hidden", opened_files)) == b"secret"
    assert read_all(open_file(catalog, "sub/.env", opened_files)) == b"TOKEN=1"


def test_a_symlink_leaving_the_root_is_not_found(
    root: Path, outside: Path, catalog: Catalog
) -> None:
    (root / "escape.txt").symlink_to(outside)
    with pytest.raises(NotFoundError):
        catalog.open_file("escape.txt")


def test_a_symlinked_folder_leaving_the_root_is_not_found(
    root: Path, outside: Path, catalog: Catalog
) -> None:
    (root / "up").symlink_to(outside.parent, target_is_directory=True)
    with pytest.raises(NotFoundError):
        catalog.open_file("up/outside.txt")
    with pytest.raises(NotFoundError):
        catalog.list_folder("up/")


def test_a_relative_symlink_climbing_out_of_the_root_is_not_found(
    root: Path, outside: Path, catalog: Catalog
) -> None:
    (root / "sub" / "climb").symlink_to("../../outside.txt")
    with pytest.raises(NotFoundError):
        catalog.open_file("sub/climb")


def test_a_symlink_to_a_sibling_folder_sharing_the_roots_prefix_is_outside(
    tmp_path: Path, root: Path, catalog: Catalog
) -> None:
    # "/tmp/x/data-evil" starts with "/tmp/x/data" but is not inside it.
    sibling = tmp_path / (root.name + "-evil")
    sibling.mkdir()
    (sibling / "f.txt").write_bytes(b"evil")
    (root / "prefix").symlink_to(sibling / "f.txt")
    with pytest.raises(NotFoundError):
        catalog.open_file("prefix")


def test_a_symlink_leaving_the_root_is_served_when_allowed(
    root: Path, outside: Path, opened_files: list[OpenFile]
) -> None:
    (root / "escape.txt").symlink_to(outside)
    catalog = Catalog(root, allow_outside_symlinks=True)
    assert read_all(open_file(catalog, "escape.txt", opened_files)) == b"outside the root"


def test_a_symlink_inside_the_root_to_a_hidden_file_is_not_found(
    root: Path, catalog: Catalog
) -> None:
    (root / "innocent.txt").symlink_to(".hidden")
    (root / "config").symlink_to(root / "sub" / ".env")
    with pytest.raises(NotFoundError):
        catalog.open_file("innocent.txt")
    with pytest.raises(NotFoundError):
        catalog.open_file("config")


def test_a_symlink_into_a_hidden_folder_is_not_found(root: Path, catalog: Catalog) -> None:
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"[core]")
    (root / "gitdir").symlink_to(".git", target_is_directory=True)
    with pytest.raises(NotFoundError):
        catalog.open_file("gitdir/config")
    with pytest.raises(NotFoundError):
        catalog.list_folder("gitdir/")


def test_a_symlink_to_a_hidden_file_is_served_with_serve_hidden(
    root: Path, opened_files: list[OpenFile]
) -> None:
    (root / "innocent.txt").symlink_to(".hidden")
    catalog = Catalog(root, serve_hidden=True)
    assert read_all(open_file(catalog, "innocent.txt", opened_files)) == b"secret"


def test_a_hidden_component_above_the_root_does_not_hide_everything(
    tmp_path: Path, opened_files: list[OpenFile]
) -> None:
    root = tmp_path / ".config" / "data"
    root.mkdir(parents=True)
    (root / "f.txt").write_bytes(b"f")
    (root / "link.txt").symlink_to("f.txt")
    catalog = Catalog(root)
    assert read_all(open_file(catalog, "link.txt", opened_files)) == b"f"
    assert [entry.name for entry in catalog.list_folder("")] == ["f.txt", "link.txt"]


def test_a_broken_symlink_is_not_found(root: Path, catalog: Catalog) -> None:
    (root / "dangling").symlink_to("no-such-target")
    with pytest.raises(NotFoundError):
        catalog.open_file("dangling")


def test_a_symlink_loop_is_not_found(root: Path, catalog: Catalog) -> None:
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    with pytest.raises(NotFoundError):
        catalog.open_file("loop1")


def test_a_fifo_is_not_found_and_never_blocks(root: Path, catalog: Catalog) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(NotFoundError):
        catalog.open_file("pipe")


def test_a_fifo_swapped_in_after_the_stat_is_refused_without_blocking(
    root: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: stat sees a regular file, open finds a FIFO; O_NONBLOCK, then fstat."""
    os.mkfifo(root / "pipe")
    real_stat = os.stat

    def stat_says_regular(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).endswith("pipe"):
            return real_stat(root / "a.txt")
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat_says_regular)
    before = open_fds()
    with pytest.raises(NotFoundError):
        catalog.open_file("pipe")
    assert open_fds() == before  # the descriptor of the FIFO was closed again


def test_a_character_device_is_not_found(root: Path, catalog: Catalog) -> None:
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except OSError as error:
        pytest.skip(f"cannot create a device node here: {error}")
    with pytest.raises(NotFoundError):
        catalog.open_file("null")


def test_a_symlink_to_a_device_is_not_found_even_when_outside_links_are_allowed(
    root: Path,
) -> None:
    (root / "null").symlink_to("/dev/null")
    (root / "zero").symlink_to("/dev/zero")
    catalog = Catalog(root, allow_outside_symlinks=True)
    for name in ("null", "zero"):
        with pytest.raises(NotFoundError):
            catalog.open_file(name)


def test_a_unix_socket_is_not_found(root: Path, catalog: Catalog) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        try:
            server.bind(str(root / "sock"))
        except OSError as error:  # a path over the sun_path limit
            pytest.skip(f"cannot bind a unix socket here: {error}")
        with pytest.raises(NotFoundError):
            catalog.open_file("sock")


def test_an_overlong_segment_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError):
        catalog.open_file("x" * 300)
    with pytest.raises(NotFoundError):
        catalog.open_file("sub/" + "é" * 150)  # 300 bytes in UTF-8
    with pytest.raises(NotFoundError):
        catalog.list_folder("x" * 300 + "/")


def test_an_overlong_path_is_not_found(catalog: Catalog) -> None:
    deep = "/".join(["abcdefgh"] * 600)  # 5399 bytes, every segment short
    with pytest.raises(NotFoundError):
        catalog.open_file(deep)
    with pytest.raises(NotFoundError):
        catalog.list_folder(deep + "/")


def test_an_overlong_path_is_not_found_even_with_bad_segments(catalog: Catalog) -> None:
    # The length is checked first, so a huge path is never split and scanned.
    with pytest.raises(NotFoundError):
        catalog.open_file("../" * 2000)


def test_a_path_just_under_the_limit_with_a_real_file_at_its_end_is_served(
    root: Path, catalog: Catalog, opened_files: list[OpenFile]
) -> None:
    segments = ["d" * 200] * 5
    folder = root.joinpath(*segments)
    folder.mkdir(parents=True)
    (folder / "end.txt").write_bytes(b"end")
    assert read_all(open_file(catalog, "/".join([*segments, "end.txt"]), opened_files)) == b"end"


# --- folders -----------------------------------------------------------------------------


@pytest.mark.parametrize("url_path", ["", "sub", "sub/deeper"])
def test_opening_a_folder_raises_is_folder(catalog: Catalog, url_path: str) -> None:
    with pytest.raises(IsFolderError):
        catalog.open_file(url_path)


def test_a_symlink_to_a_folder_inside_the_root_is_a_folder(root: Path, catalog: Catalog) -> None:
    (root / "shortcut").symlink_to("sub", target_is_directory=True)
    with pytest.raises(IsFolderError):
        catalog.open_file("shortcut")


# --- forbidden: 403 ----------------------------------------------------------------------


def test_a_permission_error_on_open_is_forbidden(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ForbiddenError):
        catalog.open_file("a.txt")


@pytest.mark.parametrize(("call", "name"), [("lstat", "a.txt"), ("stat", "alias.txt")])
def test_eacces_from_stat_is_forbidden(
    root: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch, call: str, name: str
) -> None:
    """Plain names are checked with lstat, names through a symlink with stat."""
    (root / "alias.txt").symlink_to("a.txt")
    real_stat = getattr(os, call)

    def refuse(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).endswith("a.txt"):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(os, call, refuse)
    with pytest.raises(ForbiddenError):
        catalog.open_file(name)


def test_a_folder_that_cannot_be_listed_is_forbidden(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> object:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "scandir", refuse)
    with pytest.raises(ForbiddenError):
        catalog.list_folder("sub/")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (errno.ENOENT, NotFoundError),
        (errno.ENOTDIR, NotFoundError),
        (errno.ENAMETOOLONG, NotFoundError),
        (errno.ELOOP, NotFoundError),
        (errno.EACCES, ForbiddenError),
        (errno.EPERM, ForbiddenError),
        (errno.EIO, StorageError),
        (errno.ESTALE, StorageError),
        (errno.ENOTCONN, StorageError),
        (errno.EMFILE, StorageError),
    ],
)
def test_os_errors_on_open_map_to_not_found_forbidden_or_storage_error(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, code: int, error: type[Exception]
) -> None:
    def fail(*args: object, **kwargs: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "open", fail)
    with pytest.raises(error):
        catalog.open_file("a.txt")


# --- OpenFile ----------------------------------------------------------------------------


def test_the_representation_comes_from_fstat_of_the_open_descriptor(
    root: Path, catalog: Catalog, opened_files: list[OpenFile]
) -> None:
    os.utime(root / "a.txt", ns=(1_000_000_000, 1_234_567_891_234_567_891))
    opened = open_file(catalog, "a.txt", opened_files)
    assert opened.fd is not None
    facts = os.fstat(opened.fd)
    assert opened.representation.name == "a.txt"
    assert opened.representation.size == facts.st_size == 6
    assert opened.representation.mtime_ns == facts.st_mtime_ns == 1_234_567_891_234_567_891


def test_the_representation_describes_the_opened_version_after_a_replace(
    root: Path, catalog: Catalog, opened_files: list[OpenFile]
) -> None:
    opened = open_file(catalog, "a.txt", opened_files)
    replacement = root / "a.txt.new"
    replacement.write_bytes(b"a much longer replacement")
    os.replace(replacement, root / "a.txt")
    assert opened.representation.size == 6
    assert read_all(opened) == b"alpha\n"


def test_the_descriptor_is_opened_read_only_close_on_exec_and_non_blocking(
    catalog: Catalog, opened_files: list[OpenFile]
) -> None:
    opened = open_file(catalog, "a.txt", opened_files)
    assert opened.fd is not None
    flags = fcntl.fcntl(opened.fd, fcntl.F_GETFL)
    assert flags & os.O_ACCMODE == os.O_RDONLY
    assert flags & os.O_NONBLOCK
    assert not os.get_inheritable(opened.fd)


def test_close_releases_the_descriptor_and_is_idempotent(catalog: Catalog) -> None:
    before = open_fds()
    opened = catalog.open_file("a.txt")
    assert open_fds() == before + 1
    fd = opened.fd
    assert fd is not None
    opened.close()
    assert opened.fd is None
    assert open_fds() == before
    opened.close()
    opened.close()
    assert open_fds() == before
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)


def test_every_refusal_leaves_no_descriptor_open(
    root: Path, outside: Path, catalog: Catalog
) -> None:
    os.mkfifo(root / "pipe")
    (root / "escape").symlink_to(outside)
    before = open_fds()
    for url_path in ["missing", ".hidden", "pipe", "escape", "sub", "..", "x" * 300]:
        with pytest.raises((NotFoundError, BadPathError, IsFolderError)):
            catalog.open_file(url_path)
    assert open_fds() == before


def test_the_descriptor_is_closed_when_fstat_shows_a_non_regular_file(
    root: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fstat = os.fstat
    seen: list[int] = []

    def fstat_says_fifo(fd: int) -> os.stat_result:
        seen.append(fd)
        facts = real_fstat(fd)
        return os.stat_result((stat.S_IFIFO | 0o644, *tuple(facts)[1:]))

    monkeypatch.setattr(os, "fstat", fstat_says_fifo)
    before = open_fds()
    with pytest.raises(NotFoundError):
        catalog.open_file("a.txt")
    assert len(seen) == 1
    assert open_fds() == before
    with pytest.raises(OSError, match="Bad file descriptor"):
        real_fstat(seen[0])


# --- list_folder -------------------------------------------------------------------------


def names(entries: list[FolderEntry]) -> list[str]:
    return [entry.name for entry in entries]


def test_the_root_listing_is_sorted_and_marks_folders(root: Path, catalog: Catalog) -> None:
    (root / "Zeta.txt").write_bytes(b"z")
    (root / "beta").mkdir()
    entries = catalog.list_folder("")
    assert names(entries) == ["Zeta.txt", "a.txt", "beta", "sub"]
    assert [entry.is_folder for entry in entries] == [False, False, True, True]


def test_list_folder_accepts_the_path_with_or_without_its_trailing_slash(
    catalog: Catalog,
) -> None:
    assert catalog.list_folder("sub/") == catalog.list_folder("sub")
    assert names(catalog.list_folder("sub/")) == ["b.bin", "deeper"]
    assert names(catalog.list_folder("sub/deeper/")) == ["c.txt"]


def test_entries_carry_size_and_mtime_and_folders_have_size_zero(
    root: Path, catalog: Catalog
) -> None:
    os.utime(root / "sub" / "b.bin", ns=(0, 1_700_000_000_123_456_789))
    entries = {entry.name: entry for entry in catalog.list_folder("sub/")}
    assert entries["b.bin"] == FolderEntry("b.bin", False, 4, 1_700_000_000_123_456_789)
    deeper = entries["deeper"]
    assert deeper.is_folder
    assert deeper.size == 0
    assert deeper.mtime_ns == os.stat(root / "sub" / "deeper").st_mtime_ns


def test_dotfiles_are_left_out_of_listings(root: Path, catalog: Catalog) -> None:
    (root / ".git").mkdir()
    assert ".hidden" not in names(catalog.list_folder(""))
    assert ".git" not in names(catalog.list_folder(""))
    assert ".env" not in names(catalog.list_folder("sub/"))


def test_dotfiles_are_listed_with_serve_hidden(root: Path) -> None:
    catalog = Catalog(root, serve_hidden=True)
    assert names(catalog.list_folder("")) == [".hidden", "a.txt", "sub"]


def test_symlinks_escaping_the_root_are_left_out_of_listings(
    root: Path, outside: Path, catalog: Catalog
) -> None:
    (root / "escape.txt").symlink_to(outside)
    (root / "up").symlink_to(outside.parent, target_is_directory=True)
    (root / "inside.txt").symlink_to("a.txt")
    assert names(catalog.list_folder("")) == ["a.txt", "inside.txt", "sub"]


def test_symlinks_escaping_the_root_are_listed_when_allowed(root: Path, outside: Path) -> None:
    (root / "escape.txt").symlink_to(outside)
    entries = Catalog(root, allow_outside_symlinks=True).list_folder("")
    escape = next(entry for entry in entries if entry.name == "escape.txt")
    assert escape.size == len(b"outside the root")
    assert not escape.is_folder


def test_symlinks_to_hidden_files_are_left_out_of_listings(root: Path, catalog: Catalog) -> None:
    (root / "innocent.txt").symlink_to(".hidden")
    assert "innocent.txt" not in names(catalog.list_folder(""))


def test_a_symlink_entry_reports_its_targets_size_and_kind(root: Path, catalog: Catalog) -> None:
    (root / "alias.txt").symlink_to("a.txt")
    (root / "shortcut").symlink_to("sub", target_is_directory=True)
    entries = {entry.name: entry for entry in catalog.list_folder("")}
    assert entries["alias.txt"].size == 6
    assert not entries["alias.txt"].is_folder
    assert entries["shortcut"].is_folder


def test_fifos_sockets_and_devices_are_left_out_of_listings(root: Path, catalog: Catalog) -> None:
    os.mkfifo(root / "pipe")
    (root / "nulldev").symlink_to("/dev/null")  # outside, and a device anyway
    assert names(catalog.list_folder("")) == ["a.txt", "sub"]
    listed = Catalog(root, allow_outside_symlinks=True).list_folder("")
    assert names(listed) == ["a.txt", "sub"]


def test_broken_symlinks_are_left_out_of_listings(root: Path, catalog: Catalog) -> None:
    (root / "dangling").symlink_to("no-such-target")
    (root / "loop").symlink_to("loop")
    assert names(catalog.list_folder("")) == ["a.txt", "sub"]


def test_names_that_are_not_valid_utf8_are_left_out_of_listings(
    root: Path, catalog: Catalog
) -> None:
    fd = os.open(os.fsencode(root) + b"/bad\xff", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    os.mkdir(os.fsencode(root) + b"/dir\xfe")
    assert names(catalog.list_folder("")) == ["a.txt", "sub"]


def test_an_empty_folder_lists_nothing(root: Path, catalog: Catalog) -> None:
    (root / "empty").mkdir()
    assert catalog.list_folder("empty/") == []


def test_listing_a_file_or_a_missing_folder_is_not_found(catalog: Catalog) -> None:
    for url_path in ["a.txt/", "missing/", ".hidden/", "sub/.env/"]:
        with pytest.raises(NotFoundError):
            catalog.list_folder(url_path)


def test_listing_a_symlinked_folder_outside_the_root_works_when_allowed(
    root: Path, outside: Path
) -> None:
    (root / "up").symlink_to(outside.parent, target_is_directory=True)
    listed = Catalog(root, allow_outside_symlinks=True).list_folder("up/")
    assert "outside.txt" in names(listed)


def test_listing_leaves_no_descriptor_open(root: Path, catalog: Catalog) -> None:
    before = open_fds()
    catalog.list_folder("")
    catalog.list_folder("sub/")
    assert open_fds() == before


def test_a_data_root_of_slash_serves_and_lists_what_lies_below_it(
    tmp_path: Path, opened_files: list[OpenFile]
) -> None:
    (tmp_path / "f.txt").write_bytes(b"from the top")
    url_path = str(tmp_path / "f.txt").lstrip("/")
    if any(part.startswith(".") for part in url_path.split("/")):
        pytest.skip("the temporary folder lies under a hidden folder")
    catalog = Catalog(Path("/"))
    assert read_all(open_file(catalog, url_path, opened_files)) == b"from the top"
    folder = str(tmp_path).lstrip("/") + "/"
    assert "f.txt" in names(catalog.list_folder(folder))
    with pytest.raises(IsFolderError):
        catalog.open_file("")


# --- open_cached: the open that never waits for storage -----------------------------


def cached_open(catalog: Catalog, url_path: str) -> OpenFile | None:
    """``open_cached`` once the names are in the dentry cache (a first full open puts
    them there, as the first request for a file does)."""
    try:
        catalog.open_file(url_path).close()
    except CatalogError:
        pass
    return catalog.open_cached(url_path)


def test_a_cached_open_gives_the_same_file_and_facts_as_the_full_one(catalog: Catalog) -> None:
    if not openat2.supported():
        pytest.skip("this kernel has no openat2 with RESOLVE_CACHED")
    opened = cached_open(catalog, "sub/deeper/c.txt")
    assert opened is not None
    full = catalog.open_file("sub/deeper/c.txt")
    try:
        assert read_all(opened) == b"see"
        assert opened.representation == full.representation
        assert (opened.dev, opened.ino, opened.path) == (full.dev, full.ino, full.path)
    finally:
        opened.close()
        full.close()


def test_a_cached_open_refuses_what_the_full_one_refuses(root: Path, catalog: Catalog) -> None:
    if not openat2.supported():
        pytest.skip("this kernel has no openat2 with RESOLVE_CACHED")
    with pytest.raises(IsFolderError):
        cached_open(catalog, "sub")
    with pytest.raises(BadPathError):
        catalog.open_cached("sub/../a.txt")
    with pytest.raises(NotFoundError):
        catalog.open_cached(".hidden")
    os.mkfifo(root / "fifo")
    with pytest.raises(NotFoundError):
        cached_open(catalog, "fifo")


def test_a_name_not_in_the_dentry_cache_or_behind_a_symlink_takes_the_full_path(
    root: Path, catalog: Catalog, outside: Path
) -> None:
    """None: the caller then runs open_file in a thread, which applies the symlink rules."""
    if not openat2.supported():
        pytest.skip("this kernel has no openat2 with RESOLVE_CACHED")
    (root / "link.txt").symlink_to(root / "a.txt")
    (root / "escape.txt").symlink_to(outside)
    assert cached_open(catalog, "link.txt") is None
    assert cached_open(catalog, "escape.txt") is None
    missing = catalog.open_cached("never-looked-up.txt")  # no dentry, not even negative
    assert missing is None


def test_open_cached_leaves_no_descriptor_behind(catalog: Catalog) -> None:
    if not openat2.supported():
        pytest.skip("this kernel has no openat2 with RESOLVE_CACHED")
    before = open_fds()
    for url_path in ("a.txt", "sub", "link-missing", "sub/b.bin"):
        try:
            opened = cached_open(catalog, url_path)
        except CatalogError:
            continue
        if opened is not None:
            opened.close()
    assert open_fds() == before


def test_a_listed_entry_whose_stat_fails_is_listed_with_its_error(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Failing:
        """A DirEntry whose stat() fails as a broken network file system's would."""

        def __init__(self, entry: os.DirEntry[str]) -> None:
            self._entry = entry
            self.name, self.path = entry.name, entry.path

        def is_symlink(self) -> bool:
            return False

        def stat(self) -> os.stat_result:
            if self.name == "a.txt":
                raise OSError(errno.EIO, "Input/output error")
            if self.name == "gone.txt":
                raise FileNotFoundError(errno.ENOENT, "gone")
            return self._entry.stat()

    real_scandir = os.scandir

    class Scan:
        def __init__(self, path: str) -> None:
            self._scan = real_scandir(path)

        def __enter__(self) -> list[Failing]:
            entries = [Failing(entry) for entry in self._scan]
            entries.append(Failing(entries[0]._entry))
            entries[-1].name = "gone.txt"
            return entries

        def __exit__(self, *args: object) -> None:
            self._scan.close()

    monkeypatch.setattr(os, "scandir", Scan)
    entries = {entry.name: entry for entry in catalog.list_folder("")}
    assert entries["a.txt"] == FolderEntry("a.txt", False, 0, 0, "EIO")
    assert entries["sub"].is_folder
    assert entries["sub"].error is None
    assert "gone.txt" not in entries  # removed meanwhile: simply not there


def test_a_folder_that_cannot_be_read_is_a_storage_error(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(path: str) -> object:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "scandir", fail)
    with pytest.raises(StorageError) as raised:
        catalog.list_folder("sub/")
    assert raised.value.errno_name == "EIO"
