"""Architecture rules that keep the library usable without the UI or a GPU stack."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_reset_core_never_imports_streamlit():
    offenders = [str(p) for p in (ROOT / "reset_core").rglob("*.py") if "streamlit" in _imports(p)]
    assert offenders == []


def test_reset_core_imports_without_ui_or_gpu_stack():
    """Importing every module must not pull streamlit, torch, transformers, peft or vllm."""
    modules = [
        "reset_core." + ".".join(p.relative_to(ROOT / "reset_core").with_suffix("").parts)
        for p in (ROOT / "reset_core").rglob("*.py")
        if p.name != "__init__.py" and "worker" not in p.name
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "heavy = sorted(m for m in ('streamlit', 'torch', 'transformers', 'peft', 'vllm', 'trl') "
        "if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_no_executemany_in_library():
    hits = [str(p) for p in (ROOT / "reset_core").rglob("*.py") if "executemany(" in p.read_text()]
    assert hits == []


def test_views_hold_no_sql():
    """Pages, the router and ui.py call named queries of a stage; they never run SQL."""
    views = [*sorted((ROOT / "pages").glob("*.py")), ROOT / "app.py", ROOT / "ui.py"]
    assert [p.name for p in views if "duckdb" in _imports(p)] == []
    assert [p.name for p in views if ".execute(" in p.read_text() or ".sql(" in p.read_text()] == []
