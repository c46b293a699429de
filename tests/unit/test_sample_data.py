"""scripts/sample_data.py: a sample in a missing or empty folder, never in a used one."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import runpy
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "sample_data.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_data_under_test", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sample_data = load_script()
EXPECTED_SAMPLE = hashlib.sha256(b"sample").digest() * 2048 * (4 * 1024 * 1024 // 65536)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(folder)): (
            path.read_bytes() if path.is_file() else b"",
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
    }


def test_a_missing_folder_is_created_with_a_readme_and_a_4_mib_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "nested" / "data"
    sample_data.write_sample(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["README.txt", "sample-4MiB.bin"]
    assert "/files/" in (folder / "README.txt").read_text()
    sample = (folder / "sample-4MiB.bin").read_bytes()
    assert len(sample) == sample_data.SAMPLE_SIZE == 4 * 1024 * 1024
    assert f"created a sample in {folder}/" in capsys.readouterr().err


def test_the_sample_bytes_are_the_same_everywhere(tmp_path: Path) -> None:
    sample_data.write_sample(tmp_path / "one")
    sample_data.write_sample(tmp_path / "two")
    one = (tmp_path / "one" / "sample-4MiB.bin").read_bytes()
    assert one == (tmp_path / "two" / "sample-4MiB.bin").read_bytes()
    assert one == EXPECTED_SAMPLE


def test_an_empty_existing_folder_is_filled(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    sample_data.write_sample(folder)
    assert (folder / "sample-4MiB.bin").stat().st_size == 4 * 1024 * 1024
    assert (folder / "README.txt").is_file()


def test_a_folder_with_files_is_left_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "data"
    (folder / "mine").mkdir(parents=True)
    (folder / "mine" / "report.pdf").write_bytes(b"%PDF")
    (folder / "notes.txt").write_text("mine\n")
    before = snapshot(folder)
    sample_data.write_sample(folder)
    assert snapshot(folder) == before
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("content", ["only-a-folder/", ".hidden"])
def test_any_entry_even_hidden_or_a_bare_folder_counts_as_in_use(
    tmp_path: Path, content: str
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    if content.endswith("/"):
        (folder / content).mkdir()
    else:
        (folder / content).write_bytes(b"")
    sample_data.write_sample(folder)
    assert [p.name for p in folder.iterdir()] == [content.rstrip("/")]


def test_running_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    sample_data.write_sample(folder)
    (folder / "README.txt").write_text("edited by the user\n")
    before = snapshot(folder)
    sample_data.write_sample(folder)
    assert snapshot(folder) == before


def test_the_sample_is_served_whole_by_the_app(tmp_path: Path) -> None:
    from config import Settings
    from service import create_app

    folder = tmp_path / "data"
    sample_data.write_sample(folder)
    app = create_app(Settings(data_root=folder))
    with app.test_client() as client, client.get("/files/sample-4MiB.bin") as response:
        assert response.status_code == 200
        assert response.get_data() == EXPECTED_SAMPLE


def run_as_script(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    runpy.run_path(str(SCRIPT), run_name="__main__")


def test_as_a_script_it_fills_the_folder_named_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DL_DATA_ROOT", raising=False)
    run_as_script(monkeypatch, str(tmp_path / "given"))
    assert (tmp_path / "given" / "sample-4MiB.bin").is_file()


def test_as_a_script_it_defaults_to_dl_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DL_DATA_ROOT", str(tmp_path / "from-env"))
    run_as_script(monkeypatch)
    assert (tmp_path / "from-env" / "README.txt").is_file()


def test_as_a_script_it_defaults_to_data_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DL_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    run_as_script(monkeypatch)
    assert os.path.isfile(tmp_path / "data" / "sample-4MiB.bin")
