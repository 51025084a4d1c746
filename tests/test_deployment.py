"""The deployment files agree with the README and the settings."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from server.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def compose_config() -> dict:
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is required in CI (.ci/run installs it)")
        pytest.skip("docker-compose (Debian package) is not installed")
    completed = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True, text=True, env={**os.environ, "ARENA_ADMIN_TOKEN": "x"},
    )
    assert completed.returncode == 0, completed.stderr
    return yaml.safe_load(completed.stdout)


def test_compose_file_is_valid_and_complete():
    config = compose_config()
    services = config["services"]
    assert {"api", "worker", "redis", "postgres"} <= set(services)
    for name in ("api", "redis", "postgres"):
        assert "healthcheck" in services[name], name
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["api"]["volumes"] and services["worker"]["volumes"]


def test_compose_settings_are_documented_and_real():
    config = compose_config()
    readme = (ROOT / "README.md").read_text()
    fields = {f"ARENA_{name.upper()}" for name in Settings.model_fields}
    for name in ("api", "worker"):
        for variable in config["services"][name]["environment"]:
            assert variable in fields, f"{variable} is not a setting"
            assert f"`{variable}`" in readme, f"{variable} is not in the README"
    env = config["services"]["worker"]["environment"]
    assert env["ARENA_DATABASE_URL"].startswith("postgresql")
    assert env["ARENA_BROKER_URL"].startswith("redis://")


def test_every_setting_is_documented():
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"ARENA_{name.upper()}" in readme, name


def test_dockerfile_installs_like_the_readme():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN make install", dockerfile, re.M)
    assert "make serve" in (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^install:", makefile, re.M)
