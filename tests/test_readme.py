"""Every code snippet of README.md: the Python ones run as written (from the repository root),
and every command of the shell ones names a script, config file and config arguments that
exist (the commands themselves are the demo, the tests and cluster launches, run elsewhere)."""

import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
SHELL = [code for lang, code in BLOCKS if lang == "bash"]


def test_readme_opens_with_the_two_commands():
    assert BLOCKS[0][0] == "bash"
    commands = [line.split("#")[0].strip() for line in BLOCKS[0][1].splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_snippet_runs(index):
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", PYTHON[index]], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


def _commands():
    for block in SHELL:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if "scripts/" in line:
                yield line


@pytest.mark.parametrize("command", list(_commands()))
def test_shell_command_names_what_exists(command):
    from qsal_jax.experiments.config_args import load_config

    words = [w for quoted in shlex.split(command) for w in quoted.split()]  # a remote command in quotes too
    scripts = [w for w in words if w.startswith("scripts/")]
    assert scripts and all(os.path.isfile(os.path.join(ROOT, s)) for s in scripts), command
    for w in words:
        if w.startswith("--config="):
            path, _, arg = w.split("=", 1)[1].partition(":")
            assert load_config(os.path.join(ROOT, path) + (f":{arg}" if arg else "")) is not None, command
