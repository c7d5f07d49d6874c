"""models/ is the pure core: it must not import the streaming or web stack."""
import ast
from pathlib import Path

FORBIDDEN = {"faust", "aiohttp", "prometheus_client", "aiokafka", "app", "agents", "tables"}
ROOT = Path(__file__).resolve().parents[2]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_models_import_only_the_pure_stack():
    files = list((ROOT / "models").rglob("*.py"))
    assert files
    bad = {str(f.relative_to(ROOT)): imported_roots(f) & FORBIDDEN for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_tables_do_not_import_faust_or_the_gateway():
    for f in (ROOT / "tables").rglob("*.py"):
        assert not imported_roots(f) & {"faust", "aiohttp", "aiokafka"}, f
