"""Architecture invariants (see ARCHITECTURE.md), checked on the source so they stay true."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LSP_PACKAGES = ("lsprotocol", "pygls", "pytest_lsp")


def imports_of(folder: str) -> dict[str, set[str]]:
    """Top-level package names imported by each .py file under a folder (relative imports skipped)."""
    found = {}
    for path in (ROOT / folder).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path} imports {sorted(names & set(forbidden))}"
            for path, names in imports_of(folder).items() if names & set(forbidden)]


def test_model_never_imports_sdls_or_lsp():
    assert offenders("model", ("sdls", *LSP_PACKAGES)) == []


def test_kernels_import_neither_sdls_nor_the_model():
    assert offenders("kernels", ("sdls", "sdls_model", *LSP_PACKAGES)) == []


def test_only_the_lsp_layer_knows_lsp():
    allowed = ("sdls/lsp/", "sdls/demo.py")
    leaks = [o for o in offenders("sdls", LSP_PACKAGES) if not o.startswith(allowed)]
    assert leaks == []


def test_import_names_are_sdls_own():
    import sdls
    import sdls_kernels
    import sdls_model
    assert Path(sdls_model.__file__).parent == ROOT / "model"
    assert Path(sdls_kernels.__file__).parent == ROOT / "kernels"
    assert Path(sdls.__file__).parent == ROOT / "sdls"


def test_every_package_folder_is_listed_in_pyproject():
    import tomllib
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {v: k for k, v in conf["package-dir"].items()}
    listed = set(conf["packages"])
    for top, name in folders.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            pkg = ".".join([name, *rel.parts]) if rel.parts else name
            assert pkg in listed, f"{init.parent} is a package but {pkg} is not in pyproject's packages"


@pytest.mark.slow
def test_built_wheel_installs_and_imports(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels)], check=True, capture_output=True)
    (wheel,) = wheels.glob("sdls-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    probe = ("import sdls, sdls_model, sdls_kernels, sdls.cli; "
             "print(sdls.__file__); print(sdls_model.__file__); print(sdls_kernels.__file__)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env, cwd=tmp_path)
    files = out.stdout.split()
    assert all(f.startswith(str(target)) for f in files), files
    assert not (target / "tests").exists() and not (target / "model").exists()
