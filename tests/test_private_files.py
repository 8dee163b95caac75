"""The data folder holds drafts, chart facts and password hashes: only its owner may read it.

Folders fhirgen makes are 0700, its files 0600, whatever umask started it; gunicorn opens no
control socket at a path shared by every instance on the machine.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fhirgen.cli.processes import Supervisor, free_port, wait_for
from fhirgen.store import Store

ROOT = Path(__file__).resolve().parents[1]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def loose_entries(folder: Path) -> list[str]:
    """Everything under ``folder`` (itself included) that others could read or enter."""
    found = []
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            continue  # sockets and pipes: their folder is what keeps others out
        if mode(path) & 0o077:
            found.append(f"{path.relative_to(folder)} {oct(mode(path))}")
    return found


def test_a_sqlite_store_and_its_wal_are_private_under_a_loose_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        database = tmp_path / "data" / "fhirgen.db"
        store = Store(f"sqlite:///{database}")
        store.migrate()
        store.add_subscription(id="s1", kind="rest-hook", criteria="Encounter?status=finished")
        wal = database.with_name("fhirgen.db-wal")
        assert wal.exists()
        assert mode(database) == 0o600
        assert mode(wal) == 0o600
        assert mode(database.parent) == 0o700
        store.dispose()
    finally:
        os.umask(previous)


def test_an_existing_store_file_is_made_private(tmp_path: Path) -> None:
    database = tmp_path / "fhirgen.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    Store(f"sqlite:///{database}").dispose()
    assert mode(database) == 0o600


def test_prepare_makes_an_existing_data_folder_private_and_what_is_made_there(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    script = (
        "import os, sys; os.umask(0o022)\n"
        "from fhirgen.config import load_settings\n"
        "from fhirgen.cli.launchers import prepare\n"
        "prepare(load_settings(data_dir=sys.argv[1]))\n"
        "open(os.path.join(sys.argv[1], 'written-after'), 'w').close()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRGEN_")}
    subprocess.run([sys.executable, "-c", script, str(data)], check=True, env=env, cwd=ROOT)
    assert mode(data) == 0o700
    assert mode(data / "written-after") == 0o600
    assert loose_entries(data) == []


@pytest.mark.live
def test_serve_keeps_its_data_private_and_opens_no_shared_control_socket(tmp_path: Path) -> None:
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    data = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRGEN_")}
    env.update(
        {
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(runtime),
            "FHIRGEN_DATA_DIR": str(data),
            "FHIRGEN_EHR_BASE_URL": "http://127.0.0.1:9/fhir",
            "FHIRGEN_RECONCILE_INTERVAL": "3600",
        }
    )
    supervisor = Supervisor(tmp_path, env=env)
    try:
        child = supervisor.fhirgen("web", "serve", "--port", str(port), "--workers", "1")
        wait_for(f"http://127.0.0.1:{port}/readyz", timeout=60, process=child, ok=300)
        assert sorted(p.name for p in runtime.iterdir()) == []
        assert not (home / ".gunicorn").exists()
        assert (data / "fhirgen.db").exists()
        assert loose_entries(data) == []
    finally:
        supervisor.stop()
