"""The team server's docker/ files, checked without a Docker engine.

The compose files are validated against the Compose Specification's JSON schema, the copy that
check-jsonschema vendors (``check-jsonschema --builtin-schema vendor.compose-spec`` uses the
same file), with jsonschema. The rest reads the files as text: every setting the code reads is
listed in docker/.env.example, every build target exists, the images run as a user other than
root, the GPU worker takes only the gpu queue one task at a time, Celery beat runs once.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from importlib import import_module
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
COMPOSE_FILES = sorted(DOCKER.glob("compose*.yaml"))
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / ".env.example"
NGINX_CONF = DOCKER / "nginx.conf"

requirements = runpy.run_path(str(DOCKER / "requirements.py"))["requirements"]
"""docker/requirements.py: the base dependencies and those of the named groups."""

ENV_READERS = {"env_str", "env_int", "env_bool", "env_list"}
"""webapp/env.py's typed readers: ``env_int("NAME", default)``."""


# ------------------------------------------------------------------------------ helpers


def compose_schema() -> dict:
    vendored = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(vendored.read_text(encoding="utf-8"))


def load_compose(path: Path = COMPOSE) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def schema_errors(document: dict) -> list[str]:
    validator = Draft202012Validator(compose_schema())
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def env_example_lines() -> list[str]:
    return ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()


def env_example_listed() -> set[str]:
    """Names set in .env.example, or shown commented out (``# NAME=default``)."""
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=")
    return {m.group(1) for line in env_example_lines() if (m := pattern.match(line))}


def env_example_values() -> dict[str, str]:
    """The settings .env.example sets (not its commented-out ones)."""
    values = {}
    for line in env_example_lines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def comment_above(name: str) -> str:
    """The comment lines right above a setting of .env.example."""
    lines = env_example_lines()
    i = next(i for i, line in enumerate(lines) if line.startswith(f"{name}="))
    block = []
    while i > 0 and lines[i - 1].startswith("#"):
        i -= 1
        block.insert(0, lines[i])
    return "\n".join(block)


def env_vars_read_by_code() -> dict[str, str]:
    """Every environment variable the server code reads by a literal name, with where:
    webapp/env.py's readers, ``os.environ.get``, ``os.getenv`` and ``os.environ[...]`` (read, not
    set: a worker process sets OMP_NUM_THREADS for the processes it starts)."""
    found = {}
    sources = [
        path
        for package in ("webapp", "workers")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                on_environ = isinstance(func, ast.Attribute) and _is_os_environ(func.value)
                if called in ENV_READERS or called == "getenv" or (called == "get" and on_environ):
                    name = node.args[0]
            elif (
                isinstance(node, ast.Subscript)
                and _is_os_environ(node.value)
                and isinstance(node.ctx, ast.Load)  # os.environ[...] = … sets, not reads
            ):
                name = node.slice
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found.setdefault(name.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def compose_variables(text: str) -> set[str]:
    """``${NAME}``, ``${NAME:-default}``, ``${NAME:?error}`` and ``$NAME`` outside comments;
    ``$$`` is a literal dollar for the container's shell, not a Compose variable."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(lines).replace("$$", "")
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))


def command_args(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def option(args: list[str], *names: str) -> str | None:
    """The value of a command-line option given as ``-Q gpu`` or ``--queues=gpu``."""
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def dockerfile_stages() -> dict[str, dict]:
    """``FROM image AS name`` stages: their base (image or stage) and instructions, with
    continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"(?i)^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", line)
        if match:
            current = {"base": match.group(1), "lines": []}
            stages[match.group(2) or f"<unnamed {len(stages)}>"] = current
        elif current is not None:
            current["lines"].append(line)
    return stages


def stage_chain(target: str) -> list[str]:
    """The instructions that build ``target``: its base stages' first, then its own."""
    stages = dockerfile_stages()
    stage = stages[target]
    inherited = stage_chain(stage["base"]) if stage["base"] in stages else []
    return inherited + stage["lines"]


def build_targets() -> dict[str, str]:
    """``file: service`` → its build target, for every service of every compose file."""
    targets = {}
    for path in COMPOSE_FILES:
        for name, service in load_compose(path)["services"].items():
            build = service.get("build")
            if isinstance(build, dict) and "target" in build:
                targets[f"{path.name}: {name}"] = build["target"]
    return targets


def size_in_bytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def torch_pin() -> str:
    (pin,) = [d for d in requirements(["worker"]) if d.startswith("torch==")]
    return pin


# ------------------------------------------------------------------------------ compose


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.name)
def test_compose_file_follows_the_compose_specification(path):
    errors = schema_errors(load_compose(path))
    assert not errors, f"{path.name} breaks the Compose Specification:\n" + "\n".join(errors)


def test_the_schema_check_rejects_a_broken_compose_file():
    """The check bites: a misspelt key, a wrong type and a bad device reservation fail."""
    assert len(COMPOSE_FILES) >= 2, "docker/compose.yaml and docker/compose.gpu-host.yaml"
    broken = copy.deepcopy(load_compose())
    broken["services"]["web"]["healthchek"] = broken["services"]["web"].pop("healthcheck")
    broken["services"]["redis"]["ports"] = 6379
    broken["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["gpus"] = 1
    errors = "\n".join(schema_errors(broken))
    assert "services/web" in errors and "healthchek" in errors
    assert "services/redis/ports" in errors
    assert "gpus" in errors


def test_compose_services():
    services = load_compose()["services"]
    for name in ("proxy", "web", "worker-cpu", "worker-gpu", "beat", "postgres", "redis"):
        assert name in services, name
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["createbucket"]["image"].startswith("minio/mc")
    assert services["createbucket"]["restart"] == "no"
    for name in ("web", "worker-cpu", "worker-gpu", "beat", "migrate"):
        assert services[name]["env_file"] == ".env", name


def test_compose_variables_are_listed_in_env_example():
    listed = env_example_listed()
    for path in COMPOSE_FILES:
        missing = compose_variables(path.read_text(encoding="utf-8")) - listed
        assert not missing, f"{path.name} uses variables missing from .env.example: {missing}"


def test_health_checks():
    services = load_compose()["services"]
    for name in ("postgres", "redis", "web"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_migrations_run_before_web_and_workers():
    services = load_compose()["services"]
    migrate = command_args(services["migrate"])
    assert migrate[-3:-1] == ["manage.py", "migrate"] and "--noinput" in migrate
    for name in ("web", "worker-cpu", "worker-gpu", "beat"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_web_is_served_by_gunicorn_behind_the_proxy():
    services = load_compose()["services"]
    web = command_args(services["web"])
    assert web[:2] == ["gunicorn", "webapp.wsgi:application"]
    bind = option(web, "--bind", "-b")
    conf = NGINX_CONF.read_text(encoding="utf-8")
    assert re.search(rf"^\s*server\s+web:{bind.rsplit(':', 1)[1]};", conf, re.M), bind
    assert any(volume.startswith("./nginx.conf:") for volume in services["proxy"]["volumes"])


def test_proxy_takes_the_largest_upload():
    """The API sends 8 MiB chunks; a browser sends a whole file, up to the upload limit."""
    conf = NGINX_CONF.read_text(encoding="utf-8")
    (value,) = re.findall(r"^\s*client_max_body_size\s+(\S+);", conf, re.M)
    limit = int(env_example_values()["REPLENS_MAX_UPLOAD_BYTES"])
    assert size_in_bytes(value) > max(limit, 8 * 1024**2)


# ------------------------------------------------------------------------------ workers


def gpu_worker_services() -> dict[str, dict]:
    return {
        f"{path.name}: {name}": service
        for path in COMPOSE_FILES
        for name, service in load_compose(path)["services"].items()
        if service.get("build", {}).get("target") == "worker-cuda"
    }


def test_gpu_workers_take_only_the_gpu_queue_one_task_at_a_time():
    workers = gpu_worker_services()
    assert "compose.yaml: worker-gpu" in workers
    for name, service in workers.items():
        args = command_args(service)
        assert args[:4] == ["celery", "-A", "webapp.celery", "worker"], name
        assert option(args, "-Q", "--queues") == "gpu", name
        assert option(args, "--concurrency", "-c") == "1", name
        assert option(args, "--prefetch-multiplier") == "1", name
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
        assert service["environment"]["REPLENS_DEVICE"] == "cuda", name
    count = load_compose()["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]
    assert count["devices"][0]["count"] == 1


def test_cpu_worker_takes_the_cpu_and_default_queues():
    services = load_compose()["services"]
    args = command_args(services["worker-cpu"])
    assert args[:4] == ["celery", "-A", "webapp.celery", "worker"]
    assert option(args, "-Q", "--queues") == "${CPU_WORKER_QUEUES:-cpu,default}"
    assert env_example_values()["CPU_WORKER_QUEUES"] == "cpu,default"
    assert option(args, "--prefetch-multiplier") == "1"
    assert services["worker-cpu"]["build"]["target"] == "worker"


def test_every_queue_has_a_worker():
    from webapp.celery import QUEUES

    services = load_compose()["services"]
    cpu = env_example_values()["CPU_WORKER_QUEUES"].split(",")
    gpu = option(command_args(services["worker-gpu"]), "-Q")
    assert set(QUEUES) == set(cpu) | {gpu}


def test_celery_beat_runs_exactly_once():
    beats = []
    for path in COMPOSE_FILES:
        for name, service in load_compose(path)["services"].items():
            args = command_args(service)
            if args[:1] != ["celery"]:
                continue
            assert "-B" not in args and "--beat" not in args, f"{name} embeds beat"
            if "beat" in args:
                beats.append(f"{path.name}: {name}")
                assert service.get("deploy", {}).get("replicas", 1) == 1
    assert beats == ["compose.yaml: beat"]
    from webapp.celery import app

    assert {e["task"] for e in app.conf.beat_schedule.values()} == {"replens.reap"}


# ------------------------------------------------------------------------------ Dockerfile


def test_every_build_target_exists_in_the_dockerfile():
    stages = dockerfile_stages()
    targets = build_targets()
    assert set(targets.values()) >= {"web", "worker", "worker-cuda"}
    for service, target in targets.items():
        assert target in stages, f"{service}: no `FROM ... AS {target}` in docker/Dockerfile"
    for path in COMPOSE_FILES:
        for service in load_compose(path)["services"].values():
            if isinstance(service.get("build"), dict):
                build = service["build"]
                context = (path.parent / build["context"]).resolve()
                assert context == ROOT and (context / build["dockerfile"]) == DOCKERFILE


def test_images_run_as_an_unprivileged_user():
    assert any(line.startswith("USER ") for line in dockerfile_stages()["web"]["lines"])
    for target in set(build_targets().values()):
        users = [line.split()[1] for line in stage_chain(target) if line.startswith("USER ")]
        assert users, f"{target} runs as root"
        assert users[-1].split(":")[0] not in ("root", "0"), target


def test_web_collects_static_files_at_build_time():
    web = dockerfile_stages()["web"]["lines"]
    assert any("manage.py collectstatic --noinput" in line for line in web)
    assert any(line.startswith("CMD") and "gunicorn" in line for line in web)


@pytest.mark.parametrize("target", ["worker", "worker-cuda"])
def test_torch_is_pinned_and_installed_before_the_project(target):
    chain = stage_chain(target)
    pin = torch_pin()
    torch = [i for i, line in enumerate(chain) if f"pip install {pin} --index-url" in line]
    project = [i for i, line in enumerate(chain) if line.startswith("COPY . ")]
    assert torch and project, f"{target}: no `pip install {pin} --index-url` or `COPY . `"
    assert torch[0] < project[0]
    index = chain[torch[0]].split("--index-url", 1)[1].split()[0]
    if match := re.fullmatch(r"\$\{?(\w+)\}?", index):  # an ARG with a default
        (index,) = [line.split("=", 1)[1] for line in chain if line.startswith(f"ARG {match[1]}=")]
    wheels = r"/whl/cu1[23]\d" if target == "worker-cuda" else r"/whl/cpu"
    assert re.fullmatch(rf"https://download\.pytorch\.org{wheels}", index), index


MODEL_RUNTIMES = ("torch", "transformers", "onnx", "onnxruntime", "umap-learn", "scikit-learn")


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=~!; ]", r, maxsplit=1)[0].lower() for r in requirements}


@pytest.mark.parametrize(
    ("target", "group"), [("web", "web"), ("worker", "worker"), ("worker-cuda", "gpu-worker")]
)
def test_each_image_installs_its_own_dependency_group(target, group):
    installs = [line for line in stage_chain(target) if "docker/requirements.py" in line]
    assert [
        line.split("docker/requirements.py", 1)[1].split()[0]
        for line in installs
        if line.startswith("RUN ")
    ] == [group]
    assert all("-c requirements.lock" in line for line in installs if line.startswith("RUN "))


def test_the_web_image_carries_no_model_runtime():
    web = names(requirements(["web"]))
    assert not web & set(MODEL_RUNTIMES), web & set(MODEL_RUNTIMES)
    assert not any("torch" in line for line in stage_chain("web"))
    assert {"django", "gunicorn", "celery", "psycopg"} <= web
    for group in ("worker", "gpu-worker", "demo", "test"):
        assert set(MODEL_RUNTIMES) <= names(requirements([group])), group
    assert names(requirements(["test"])) >= names(requirements(["demo", "web", "worker"]))


def test_dockerignore_keeps_local_state_out_of_the_build():
    patterns = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    for pattern in (".venv", "var", "test-artifacts", ".git", "**/__pycache__", "**/.env"):
        assert pattern in patterns, pattern


# ------------------------------------------------------------------------------ .env.example


def test_every_setting_the_code_reads_is_in_env_example():
    read = env_vars_read_by_code()
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "REPLENS_MAX_ATTEMPTS"} <= set(read)
    listed = env_example_listed()
    missing = {name: where for name, where in read.items() if name not in listed}
    assert not missing, f"docker/.env.example lacks: {missing}"


def test_env_example_lists_object_storage():
    values = env_example_values()
    assert values["STORAGE_BACKEND"] == "storages.backends.s3.S3Storage"
    for name in (
        "AWS_STORAGE_BUCKET_NAME",
        "AWS_S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_S3_REGION_NAME",
    ):
        assert values[name], name
        assert "object storage" in comment_above(name), name


def test_env_example_has_one_plain_setting_a_line():
    """docker run --env-file reads it too: no quotes, no comment after a value."""
    for line in env_example_lines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s'\"#]*", line), line


def test_env_example_is_accepted_by_the_settings(tmp_path):
    """webapp/settings.py fails loudly on bad values: it must take every value as given, once
    the operator has replaced the secret key's placeholder (which alone stops start-up)."""
    values = env_example_values()
    env = {k: v for k, v in os.environ.items() if k not in env_example_listed()}
    env.update(values, REPLENS_VAR_DIR=str(tmp_path))
    probe = (
        "from webapp import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.STORAGES['default']['BACKEND'], s.DEBUG)"
    )

    def load(env):
        return subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
        )

    placeholder = load(env)
    assert placeholder.returncode != 0 and "SECRET_KEY is still" in placeholder.stderr
    result = load({**env, "SECRET_KEY": "an-operator-made-key-" + "k" * 40})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "storages.backends.s3.S3Storage",
        "False",
    ]


def test_env_example_credentials_agree():
    values = env_example_values()
    database = urlparse(values["DATABASE_URL"])
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.username == values["POSTGRES_USER"]
    assert database.password == values["POSTGRES_PASSWORD"]
    assert database.path == "/" + values["POSTGRES_DB"]
    for name in ("CELERY_BROKER_URL", "CACHE_URL"):
        redis = urlparse(values[name])
        assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379), name
        assert redis.password == values["REDIS_PASSWORD"], name
    assert urlparse(values["AWS_S3_ENDPOINT_URL"]).hostname == "minio"
    assert "localhost" in values["ALLOWED_HOSTS"].split(",")  # the web health check
    assert values["REPLENS_HTTPS"] == "true"


def test_the_storage_backend_of_env_example_is_installed():
    """The images install the project's dependencies: they must bring the S3 backend."""
    module, _, name = env_example_values()["STORAGE_BACKEND"].rpartition(".")
    assert hasattr(import_module(module), name)
