"""README's "Commands" block lists every command and every option `--help` knows, and no other."""
from __future__ import annotations

import re
from pathlib import Path

import click

from edgeld.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_commands() -> dict[str, set[str]]:
    text = README.read_text(encoding="utf-8")
    block = text.split("## Commands\n\n```\n", 1)[1].split("```", 1)[0]
    commands: dict[str, set[str]] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("edgeld "):
            words = line.split()
            current = " ".join(words[1:3]) if words[1] in ("orientation", "serve", "uncertainty", "decode") else words[1]
            commands[current] = set()
        commands[current] |= set(re.findall(r"--[a-z][a-z0-9-]*", line))
    return commands


def _cli_commands(group: click.Group = cli, prefix: str = "") -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= _cli_commands(command, f"{prefix}{name} ")
        else:
            # hidden options are old spellings kept working (calibrate --model), not documented
            found[prefix + name] = {o for p in command.params
                                    if isinstance(p, click.Option) and not p.hidden
                                    for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    return found


def test_readme_commands_match_the_cli():
    readme, actual = _readme_commands(), _cli_commands()
    assert set(readme) == set(actual)
    for name, options in actual.items():
        assert readme[name] == options, name
