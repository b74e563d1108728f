"""The import layers hold by construction: `lint-imports` checks the contracts in .importlinter."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(*args: str) -> subprocess.CompletedProcess:
    """Run import-linter from the repository root (where .importlinter lives)."""
    exe = Path(sys.executable).with_name("lint-imports")
    exe = str(exe) if exe.is_file() else shutil.which("lint-imports")
    assert exe, "import-linter is not installed: pip install -e '.[dev]'"
    return subprocess.run([exe, "--no-cache", *args], cwd=ROOT, capture_output=True, text=True)


def test_import_contracts_hold():
    res = lint_imports()
    assert res.returncode == 0, f"an import breaks a layer contract:\n{res.stdout}\n{res.stderr}"
    assert "0 broken" in res.stdout


def test_a_broken_contract_fails(tmp_path):
    """The check really bites: a contract the code breaks makes lint-imports fail."""
    config = tmp_path / "broken.ini"
    config.write_text("[importlinter]\nroot_package = edgeld\n\n"
                      "[importlinter:contract:broken]\nname = runtime without core\n"
                      "type = forbidden\nsource_modules = edgeld.runtime\n"
                      "forbidden_modules = edgeld.core\n")
    res = lint_imports("--config", str(config))
    assert res.returncode != 0 and "BROKEN" in res.stdout
