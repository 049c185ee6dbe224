"""Architecture rules that keep the library usable without Beam."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_library_never_imports_apache_beam():
    """`vidclass/` stays Beam-free (only `pipelines/` may import it), at any nesting depth."""
    offenders = []
    for path in (ROOT / "vidclass").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "apache_beam"]
    assert not offenders, offenders
