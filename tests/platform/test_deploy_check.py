import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "a-production-grade-secret-key-of-sufficient-length-and-entropy-8d1f3a9c",
    "ALLOWED_HOSTS": "nps.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://nps.example.com",
    "SITE_URL": "https://nps.example.com",
}


def run_manage(*args, env_overrides):
    # The browser tests allow async-unsafe ORM calls in this process while they run; a
    # production check must not inherit that.
    dropped = {"DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_check_deploy_with_production_env():
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env_overrides=PRODUCTION_ENV
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    env = {**PRODUCTION_ENV}
    env.pop("SECRET_KEY")
    result = run_manage("check", env_overrides=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
