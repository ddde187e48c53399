"""Run a command (the test suite) against a PostgreSQL and a Redis, starting throwaway ones
where none answers.

    python -m tests.services DATABASE_URL BROKER_URL -- pytest ...

Where something listens at the URL's address, it is used as it is (the machine's own
services). Where nothing does, a throwaway server is started there from the distribution's
binaries (``initdb``/``pg_ctl`` of PostgreSQL, ``redis-server``), in a temporary directory,
said on standard error, and stopped and removed when the command ends. The command runs with
``DATABASE_URL`` and ``CELERY_BROKER_URL`` set to the two URLs; its exit status is this
script's.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlparse


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def _say(message: str) -> None:
    print(f"tests.services: {message}", file=sys.stderr, flush=True)


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise SystemExit(
            f"tests.services: nothing listens where the tests expect a server and {name} is "
            "not installed: install PostgreSQL and Redis (apt-get install postgresql "
            "redis-server), or point TEST_DATABASE_URL / TEST_BROKER_URL at running ones"
        )
    return found


def _as_unprivileged(command: list[str], owner: Path) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user (or
    ``nobody``), who is given ``owner``."""
    if os.geteuid() != 0:
        return command
    user = "postgres" if _user_exists("postgres") else "nobody"
    shutil.chown(owner, user)
    return ["runuser", "-u", user, "--", *command]


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@contextmanager
def postgres(port: int) -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix="replens-test-pg-") as folder:
        data = Path(folder)
        os.chmod(data, 0o700)
        run = lambda *args: subprocess.run(  # noqa: E731
            _as_unprivileged(list(args), data), check=True, stdout=subprocess.DEVNULL
        )
        run(_binary("initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres")
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(_binary("pg_ctl"), "-D", str(data / "db"), "-o", options, "-w", "start")
        _say(f"started a throwaway PostgreSQL on 127.0.0.1:{port} (nothing listened there)")
        try:
            yield
        finally:
            run(_binary("pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop")


@contextmanager
def redis(port: int) -> Iterator[None]:
    server = subprocess.Popen(
        [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not listening("127.0.0.1", port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"tests.services: redis-server did not start on port {port}")
            time.sleep(0.1)
        _say(f"started a throwaway Redis on 127.0.0.1:{port} (nothing listened there)")
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        raise SystemExit(__doc__)
    database_url, broker_url, command = argv[0], argv[1], argv[3:]
    database, broker = urlparse(database_url), urlparse(broker_url)
    with ExitStack() as stack:
        if database.scheme.startswith("postgres"):
            port = database.port or 5432
            if not listening(database.hostname or "127.0.0.1", port):
                stack.enter_context(postgres(port))
        if broker.scheme == "redis":
            port = broker.port or 6379
            if not listening(broker.hostname or "127.0.0.1", port):
                stack.enter_context(redis(port))
        env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url}
        return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
