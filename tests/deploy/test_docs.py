"""The operator docs cannot drift from the code: the configuration reference is generated from
the config models, the policy reference names every policy key, every `gateway VERB SUB` the
docs tell an operator to type exists, and the README links every doc."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway import cli
from gateway.config import Config, ConfigError, parse_config
from gateway.policy import schema

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
GENERATOR = ROOT / "tools" / "gen_config_docs.py"


def generator():
    spec = importlib.util.spec_from_file_location("gen_config_docs", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == generator().render(), "run: python tools/gen_config_docs.py"


def test_generator_check_mode_fails_on_a_stale_file(tmp_path: Path) -> None:
    gen = generator()
    gen.TARGET = tmp_path / "configuration.md"
    gen.TARGET.write_text("stale\n")
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0


def test_generator_refuses_a_config_key_without_a_description() -> None:
    gen = generator()
    del gen.DESCRIPTIONS["lockout.window"]
    with pytest.raises(SystemExit, match="lockout.window"):
        gen.render()


def test_every_config_key_is_in_the_reference() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()

    def keys(model, prefix=""):
        for name, info in model.model_fields.items():
            key = prefix + (info.alias or name)
            yield key
            sub = info.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                yield from keys(sub, key + ".")

    for key in keys(Config):
        assert f"| `{key}` |" in text, key


def test_generator_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_policy_reference_names_every_policy_key() -> None:
    text = (ROOT / "docs" / "policies.md").read_text()
    keys = [
        *schema.RULE_KEYS,
        *schema._MATCH_KEYS,
        *schema._ENCRYPT_KEYS,
        *schema._REQUEST_KINDS,
        "limit",
        "by",
    ]
    missing = [k for k in keys if not re.search(rf"\b{k}:|`{k}`", text)]
    assert missing == []
    for value in ("public", "authenticated", "mfa", "deny", "tokens", "body", "role:NAME"):
        assert value in text


def test_readme_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text()
    for doc in DOCS:
        assert f"docs/{doc.name}" in readme, doc.name


def _plugin_config(tmp: Path) -> Path:
    """A config enabling every first-party plugin that needs no options, so the verbs plugins
    add (e.g. `apikeys`) are known too."""
    usable = []
    for module in sorted((ROOT / "plugins").glob("[!_]*.py")):
        ref = {"use": f"plugins.{module.stem}"}
        try:
            parse_config({"upstream": {"url": "http://x"}, "plugins": [ref]}, base_dir=ROOT)
        except ConfigError:
            continue
        usable.append(ref)
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump({"upstream": {"url": "http://x"}, "plugins": usable}))
    return path


def _verbs(config: Path) -> dict[str, set[str] | None]:
    parser = cli._parser(["-c", str(config)])
    out: dict[str, set[str] | None] = {}
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in top.choices.items():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        out[name] = set(nested[0].choices) if nested else None
    return out


def _code(text: str) -> str:
    fenced = [
        re.sub(r"(^|\s)#.*$", "", block, flags=re.M)  # comments are prose
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    ]
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return "\n".join(fenced + inline)


@pytest.mark.parametrize("doc", [*DOCS, ROOT / "README.md"], ids=lambda p: p.name)
def test_every_gateway_command_in_the_docs_exists(doc: Path, tmp_path: Path) -> None:
    verbs = _verbs(_plugin_config(tmp_path))
    found = re.findall(
        r"(?:^|[\s(])gateway (?:-c \S+ )?([a-z][a-z-]*)(?: ([a-z][a-z-]*))?",
        _code(doc.read_text()),
        re.M,
    )
    for verb, sub in found:
        assert verb in verbs, f"{doc.name}: gateway {verb}"
        if verbs[verb] is not None and sub:
            assert sub in verbs[verb], f"{doc.name}: gateway {verb} {sub}"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("Set up and run the tests from a fresh clone", 1)[1]
    command = block.split("```sh\n", 1)[1].split("\n```", 1)[0].strip()
    assert "\n" not in command and command.startswith("python3 -m pip install")
    last = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ][-1]
    assert last == command
