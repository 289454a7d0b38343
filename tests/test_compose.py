"""Static checks of docker-compose.yml: no Docker engine runs on CI machines."""

import re
from pathlib import Path

import pytest
import yaml

from ltv.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LONG_RUNNING = ["api", "postgres", "mlflow"]


def test_compose_has_the_three_services():
    assert set(LONG_RUNNING) <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_service_has_healthcheck(name):
    assert "test" in SERVICES[name]["healthcheck"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_dependencies_wait_for_health(name):
    for dependency, rule in SERVICES[name].get("depends_on", {}).items():
        assert dependency in SERVICES
        assert rule["condition"] == "service_healthy"


def test_compose_referenced_files_exist():
    for service in SERVICES.values():
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and source != "./data":
                assert (ROOT / source).exists(), source
    assert (ROOT / ".env.example").is_file()


def test_compose_api_port_matches_serve_config():
    serve_config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    port = serve_config["http_options"]["port"]
    assert f"${{API_PORT:-{port}}}:{port}" in SERVICES["api"]["ports"]
    assert "SERVE_PORT=8000" in (ROOT / "Dockerfile").read_text()


def test_compose_mlflow_port_matches_command():
    assert "--port 5000" in SERVICES["mlflow"]["command"]
    assert "${MLFLOW_PORT:-5000}:5000" in SERVICES["mlflow"]["ports"]


def test_compose_has_no_literal_secrets():
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"^\s+\w*PASSWORD:\s+[^$\s]", text, re.MULTILINE)
    assert "change-me" not in text


def test_compose_variables_are_in_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    used = set(re.findall(r"\$\{(\w+)", text)) - {"REVENUE_DATA"}
    for name in used:
        assert f"{name}=" in example, name


def test_settings_are_documented_in_readme():
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        env_name = field.validation_alias or name.upper()
        assert f"`{env_name}`" in readme, env_name
