"""A throwaway PostgreSQL cluster for the tests: `initdb` and `pg_ctl` on a Unix socket in a
temporary folder (as the `postgres` user when the tests run as root, which initdb refuses),
fsync off, stopped and removed at the end. Tests that need it skip, with the reason, only
where PostgreSQL is not installed (`apt-get install postgresql`; CI installs it)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


class Cluster:
    def __init__(self, folder: Path, bin_dir: Path, user: str | None) -> None:
        self.folder, self.bin_dir, self.user = folder, bin_dir, user
        self.data, self.socket = folder / "data", folder / "socket"
        self.count = 0

    def run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self.socket.mkdir()
        if self.user:
            import pwd  # POSIX only: this module is imported on every platform

            entry = pwd.getpwnam(self.user)
            for path in (self.folder, self.socket):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                 "--locale=C", "--no-sync")
        self.run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.folder / "log"), "-o",
                 f"-k {self.socket} -c listen_addresses='' -c fsync=off "
                 "-c synchronous_commit=off -c full_page_writes=off", "start")

    def stop(self) -> None:
        try:
            self.run("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket}"

    def new_database(self) -> str:
        """A fresh, empty database of its own for one test."""
        import psycopg

        self.count += 1
        name = f"t{self.count}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    bin_dir = _binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[test]')")
    user = None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run initdb as")
    folder = Path(tempfile.mkdtemp(prefix="xlcrm-pg-"))  # tmp_path's parents are 0700
    folder.chmod(0o755)
    cluster = Cluster(folder, bin_dir, user)
    try:
        cluster.start()
    except (subprocess.CalledProcessError, OSError) as error:
        shutil.rmtree(folder, ignore_errors=True)
        detail = getattr(error, "stderr", "") or str(error)
        pytest.fail(f"PostgreSQL is installed but would not start: {detail.strip()[-300:]}")
    yield cluster
    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster: Cluster) -> str:
    return postgres_cluster.new_database()
