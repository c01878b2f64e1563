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
    return [
        f"{path} imports {sorted(names & set(forbidden))}"
        for path, names in imports_of(folder).items()
        if names & set(forbidden)
    ]


def test_model_never_imports_sdls_or_lsp():
    assert offenders("model", ("sdls", *LSP_PACKAGES)) == []


def test_kernels_import_neither_sdls_nor_the_model():
    assert offenders("kernels", ("sdls", "sdls_model", *LSP_PACKAGES)) == []


def test_only_the_lsp_layer_knows_lsp():
    allowed = ("sdls/lsp/", "sdls/demo.py")
    leaks = [o for o in offenders("sdls", LSP_PACKAGES) if not o.startswith(allowed)]
    assert leaks == []


# The three distributions: (project folder, import name). Each import name is the path of its folder.
DISTRIBUTIONS = ((ROOT, "sdls"), (ROOT / "model", "sdls_model"), (ROOT / "kernels", "sdls_kernels"))


def test_import_names_are_the_paths_of_their_folders():
    import sdls
    import sdls_kernels
    import sdls_model

    assert Path(sdls_model.__file__).parent == ROOT / "model" / "sdls_model"
    assert Path(sdls_kernels.__file__).parent == ROOT / "kernels" / "sdls_kernels"
    assert Path(sdls.__file__).parent == ROOT / "sdls"


@pytest.mark.parametrize(
    "alias", ["model.sdls_model.jobs", "kernels.sdls_kernels.dispatch", "model.jobs", "kernels.dispatch"]
)
def test_no_file_imports_under_a_second_name(alias):
    """From the repository root model/ and kernels/ are folders, not packages (model/ once was, and
    `model.jobs` beside `sdls_model.jobs` made two InfillJob classes). Python still sees them as
    namespace packages there, so each package refuses to load under any name but its own."""
    proc = subprocess.run([sys.executable, "-c", f"import {alias}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0, f"{alias} imported"
    assert "ModuleNotFoundError" in proc.stderr or "one file, one module name" in proc.stderr, proc.stderr


def test_every_package_folder_is_listed_in_its_pyproject():
    import tomllib

    for folder, name in DISTRIBUTIONS:
        conf = tomllib.loads((folder / "pyproject.toml").read_text())["tool"]["setuptools"]
        assert conf["package-dir"] == {"": "."}, folder  # a plain path entry when installed editable
        listed = set(conf["packages"])
        for init in (folder / name).rglob("__init__.py"):
            pkg = ".".join(init.parent.relative_to(folder).parts)
            assert pkg in listed, f"{init.parent} is a package but {pkg} is not in {folder}/pyproject.toml"


@pytest.mark.slow
def test_built_wheels_install_and_import(tmp_path):
    wheels = tmp_path / "wheels"
    for folder, _ in DISTRIBUTIONS:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                str(folder),
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(wheels),
            ],
            check=True,
            capture_output=True,
        )
    built = sorted(w.name.split("-")[0] for w in wheels.glob("*.whl"))
    assert built == ["sdls", "sdls_kernels", "sdls_model"], built
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            *map(str, wheels.glob("*.whl")),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import sdls, sdls_model, sdls_kernels, sdls.cli; from sdls_model.checkpoint import default_model_dir; "
        "print(sdls.__file__); print(sdls_model.__file__); print(sdls_kernels.__file__); "
        "print(default_model_dir() / 'config.json')"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env, cwd=tmp_path
    )
    files = out.stdout.split()
    assert all(f.startswith(str(target)) for f in files), files
    assert Path(files[-1]).is_file()  # the shipped model travels inside the sdls-model wheel
    assert not (target / "tests").exists() and not (target / "model").exists()
