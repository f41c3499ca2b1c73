"""Architecture rules: the library works without the UI or a GPU stack, views hold no SQL,
and worker processes never touch the database."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "reset_core"
VIEWS = [*sorted((ROOT / "pages").glob("*.py")), ROOT / "app.py", ROOT / "ui.py"]
WORKERS = sorted(CORE.rglob("worker.py"))


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_reset_core_never_imports_streamlit():
    offenders = [str(p) for p in CORE.rglob("*.py") if "streamlit" in _imports(p)]
    assert offenders == []


def test_reset_core_imports_without_ui_or_gpu_stack():
    """Importing every module must not pull streamlit, torch, transformers, peft or vllm."""
    modules = [_module(p) for p in CORE.rglob("*.py") if p.name != "__init__.py"]
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
    hits = [str(p) for p in CORE.rglob("*.py") if "executemany(" in p.read_text()]
    assert hits == []


# --------------------------------------------------------------------------- views hold no SQL

# SQL keywords as queries write them (upper case, then a space); UI text does not.
SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|JOIN|GROUP BY|ORDER BY|CREATE|DROP|ALTER)\s"
)
QUERY_METHODS = {"execute", "executemany", "sql"}


def _sql_in_view(source: str, where: str) -> list[str]:
    """Where a view imports duckdb, holds a SQL string, or runs a query itself."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.split(".")[0] == "duckdb" for n in names):
                found.append((node.lineno, "imports duckdb"))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL.search(node.value)
        ):
            found.append((node.lineno, f"SQL string {node.value[:50]!r}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in QUERY_METHODS
        ):
            found.append((node.lineno, f"runs a query (.{node.func.attr})"))
    return [f"{where}:{line} {what}" for line, what in sorted(found)]


def test_the_sql_check_finds_sql_and_spares_ui_text():
    view = (
        "import duckdb\n"
        "n = con.execute(f'SELECT count(*) FROM t WHERE k = {k}').fetchall()\n"
        "s.to_frame(' ORDER BY x')\n"
        "st.caption('Select candidates from the list, then update where needed.')\n"
    )
    assert _sql_in_view(view, "view.py") == [
        "view.py:1 imports duckdb",
        "view.py:2 SQL string 'SELECT count(*) FROM t WHERE k = '",
        "view.py:2 runs a query (.execute)",
        "view.py:3 SQL string ' ORDER BY x'",
    ]  # and the caption is UI text


def test_views_hold_no_sql():
    """Pages, the router and the shared UI call named functions of a stage; no queries."""
    assert len(VIEWS) > 3 and all(p.exists() for p in VIEWS)
    offenders = [f for p in VIEWS for f in _sql_in_view(p.read_text(), str(p.relative_to(ROOT)))]
    assert offenders == [], "\n".join(offenders)


# --------------------------------------------------------------------------- workers


def _store_imports(tree: ast.AST, where: str, skip=lambda fn: False) -> list[str]:
    """Imports of duckdb or reset_core.store anywhere (also inside functions, unless skipped)."""
    skipped = {
        id(n)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef) and skip(fn)
        for n in ast.walk(fn)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        if any(n == "duckdb" or n.startswith(("duckdb.", "reset_core.store")) for n in names):
            found.append(node.lineno)
    return [f"{where}:{line} imports the store" for line in sorted(found)]


def _app_side(fn: ast.FunctionDef) -> bool:
    """A function given the app's connection (``con``): app code, not worker code."""
    return "con" in {a.arg for a in fn.args.args}


def _connect_calls(tree: ast.AST, where: str) -> list[str]:
    return [
        f"{where}:{n.lineno} calls connect()"
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and (
            (isinstance(n.func, ast.Name) and n.func.id == "connect")
            or (isinstance(n.func, ast.Attribute) and n.func.attr == "connect")
        )
    ]


def test_the_worker_checks_find_lazy_imports_and_connects():
    tree = ast.parse(
        "import pyarrow\n"
        "def run(ctx):\n"
        "    from reset_core import store\n"
        "    import duckdb\n"
        "    store.connect(ctx.config['db'])\n"
        "def sync(con):\n"
        "    from reset_core.store import one\n"
    )
    assert _store_imports(tree, "w.py") == [
        "w.py:3 imports the store",
        "w.py:4 imports the store",
        "w.py:7 imports the store",
    ]
    assert _store_imports(tree, "w.py", skip=_app_side) == [
        "w.py:3 imports the store",
        "w.py:4 imports the store",
    ]
    assert _connect_calls(tree, "w.py") == ["w.py:5 calls connect()"]


def test_worker_modules_do_not_load_the_store():
    """A worker process (python -m reset_core.jobs) imports jobs and its stage's worker."""
    assert {p.parent.name for p in WORKERS} >= {"sampling", "judging", "training"}
    modules = ["reset_core.jobs", *(_module(p) for p in WORKERS)]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "    loaded = [k for k in ('duckdb', 'reset_core.store') if k in sys.modules]\n"
        "    if loaded: sys.exit(f'importing {m} loaded {loaded}')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_workers_never_open_the_database():
    """Not even a lazy import: no store, no duckdb, no connect() in a worker or the runner."""
    jobs = CORE / "jobs.py"
    tree = ast.parse(jobs.read_text())
    runner = [
        n
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in ("run_worker", "JobContext")
    ]
    assert len(runner) == 2
    found = []
    for path in WORKERS:
        where, worker = str(path.relative_to(ROOT)), ast.parse(path.read_text())
        found += _store_imports(worker, where) + _connect_calls(worker, where)
    found += [f for n in runner for f in _connect_calls(n, "reset_core/jobs.py")]
    # jobs.py is also the app side: only functions given the app's connection use the store.
    found += _store_imports(tree, "reset_core/jobs.py", skip=_app_side)
    assert found == [], "\n".join(found)
