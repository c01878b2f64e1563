"""The editor clients declare the server's settings under the server's own keys and defaults.

VS Code contributes every setting of sdls/lsp/settings.py as `sdls.<camelCase path>` with the same
default (VS Code sends its defaults to the server, so a stale one would override the server's);
the extension forwards exactly the server's top-level keys; the Neovim plugin only type-checks keys
that exist. A setting added to the server without the editors fails here.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path

from sdls.lsp.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PACKAGE = json.loads((REPO / "editors" / "vscode" / "package.json").read_text(encoding="utf-8"))
PROPERTIES = PACKAGE["contributes"]["configuration"]["properties"]
CLIENT_ONLY = {"sdls.pythonPath", "sdls.trace.server"}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def json_type(hint) -> object:
    if typing.get_origin(hint) is list:
        return "array"
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = {bool: "boolean", int: "integer", float: "number", str: "string"}[args[0] if args else hint]
    return [base, "null"] if type(None) in typing.get_args(hint) else base


def server_settings(obj=None, prefix="sdls.") -> dict[str, tuple[object, object]]:
    """Every leaf setting: "sdls.completion.maxTokens" -> (default, JSON schema type)."""
    obj = obj if obj is not None else Settings()
    hints = typing.get_type_hints(type(obj))
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = prefix + camel(f.name)
        if dataclasses.is_dataclass(value):
            out.update(server_settings(value, key + "."))
        else:
            out[key] = (value, json_type(hints[f.name]))
    return out


def test_every_server_setting_is_contributed_with_its_default_and_type():
    for key, (default, kind) in server_settings().items():
        assert key in PROPERTIES, f"{key} is a server setting but editors/vscode/package.json does not declare it"
        assert PROPERTIES[key]["default"] == default, (key, PROPERTIES[key]["default"], default)
        assert PROPERTIES[key]["type"] == kind, (key, PROPERTIES[key]["type"], kind)


def test_every_contributed_setting_is_read_by_the_server_or_the_client():
    server = server_settings()
    for key in PROPERTIES:
        assert key in server or key in CLIENT_ONLY, (
            f"{key} is declared in package.json but the server has no such setting"
        )


def test_extension_forwards_exactly_the_server_top_level_keys():
    source = (REPO / "editors" / "vscode" / "src" / "config.ts").read_text(encoding="utf-8")
    declared = json.loads(re.search(r"SERVER_KEYS = (\[.*?\]);", source).group(1).replace("'", '"'))
    assert sorted(declared) == sorted(camel(f.name) for f in dataclasses.fields(Settings))


def test_neovim_checks_only_keys_the_server_has():
    source = (REPO / "editors" / "nvim" / "lua" / "sdls" / "config.lua").read_text(encoding="utf-8")
    block = source[source.index("local SETTINGS = {") :]
    block = block[: block.index("\n}\n")]
    checked = re.findall(r'\["([\w.]+)"\] = \{', block)
    assert checked, "no settings found in config.lua"
    server = server_settings()
    for key in checked:
        assert "sdls." + key in server, f"nvim config.lua checks settings.{key}, which the server does not have"


def test_settings_with_a_fixed_set_of_values_list_the_same_values_in_both_editors():
    lua = (REPO / "editors" / "nvim" / "lua" / "sdls" / "config.lua").read_text(encoding="utf-8")
    found = 0

    def walk(obj, prefix="sdls."):
        nonlocal found
        for f in dataclasses.fields(obj):
            value, key = getattr(obj, f.name), prefix + camel(f.name)
            if dataclasses.is_dataclass(value):
                walk(value, key + ".")
            elif "choices" in f.metadata:
                found += 1
                assert PROPERTIES[key].get("enum") == list(f.metadata["choices"]), key
                listed = re.search(
                    r'\["' + re.escape(key.removeprefix("sdls.")) + r'"\] = \{ one_of\(\{([^}]*)\}\)', lua
                )
                assert listed and re.findall(r'"(\w+)"', listed.group(1)) == list(f.metadata["choices"]), key

    walk(Settings())
    assert found, "no setting with a fixed set of values"


def test_vscode_declares_the_server_ranges_of_numeric_settings():
    """VS Code's settings editor refuses what the server would refuse (sdls.lsp.settings.SETTING_RANGES)."""
    from sdls.lsp.settings import SETTING_RANGES

    for path, rng in SETTING_RANGES.items():
        entry = PROPERTIES["sdls." + ".".join(camel(part) for part in path.split("."))]
        low_key = "exclusiveMinimum" if rng.low_open else "minimum"
        assert (entry.get(low_key), entry.get("maximum")) == (rng.low, rng.high), path


def test_settings_the_server_takes_only_at_start_up_are_machine_scoped_and_restricted_in_vscode():
    """What chooses what runs, what is read or where code goes cannot come from a workspace: the
    server refuses a later change of STARTUP_ONLY; VS Code gives them (and pythonPath) machine scope,
    restricts them in untrusted workspaces and restarts the server when one changes."""
    from sdls.lsp.settings import STARTUP_ONLY, editor_key

    startup = {"sdls." + editor_key(path) for path in STARTUP_ONLY}
    machine = {key for key, entry in PROPERTIES.items() if entry.get("scope") == "machine"}
    assert machine == startup | {"sdls.pythonPath"}
    restricted = PACKAGE["capabilities"]["untrustedWorkspaces"]["restrictedConfigurations"]
    assert sorted(restricted) == sorted(machine)
    source = (REPO / "editors" / "vscode" / "src" / "config.ts").read_text(encoding="utf-8")
    restart = json.loads(re.search(r"RESTART_SETTINGS = (\[.*?\]);", source).group(1).replace("'", '"'))
    assert {"sdls." + key for key in restart} >= machine
