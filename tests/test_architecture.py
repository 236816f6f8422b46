"""The house rules that the folders show: imports flow one way, and a long module says why it is long."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("videoapi", "functions", "workers", "local")
LONG = 300


def test_import_contracts_hold():
    """import-linter's contracts (pyproject.toml): the runtime never imports local/, entry points over the core."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout and "BROKEN" not in run.stdout


def test_modules_over_300_lines_say_why():
    unexplained = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            if source.count("\n") <= LONG:
                continue
            docstring = ast.get_docstring(ast.parse(source)) or ""
            if "Over 300 lines because" not in docstring:
                unexplained.append(str(path.relative_to(ROOT)))
    assert not unexplained, f"modules over {LONG} lines without a reason in their docstring: {unexplained}"


def test_the_runtime_packages_do_not_ship_the_emulator_to_lambda():
    """The Lambda build (Makefile) removes local/ from each function's package."""
    makefile = (ROOT / "Makefile").read_text()
    build = makefile[makefile.index("build-UploadFunction") :]
    assert '"$(ARTIFACTS_DIR)/local"' in build.split("\n\n")[0]
