"""The test suite mirrors the package, and its quick lane reaches every module.

Convention: ``jaxhash/<module>.py`` is tested in ``tests/test_<module>.py``;
``jaxhash/<package>/<module>.py`` in ``tests/<package>/test_<module>.py`` (or
``test_<package>_<module>.py`` where that basename is taken elsewhere); a package's
``__init__.py`` in ``tests/<package>/test_<package>.py`` (or ``tests/test_<package>.py``, where
the package was a module before). A file may be split by topic:
``test_<module>_<topic>.py`` counts for ``<module>``. Tests that span modules (fresh
processes, the notebook, several hosts) live in ``tests/integration/``.

There are no ``__init__.py`` files under ``tests/`` and every test file's basename is unique:
pytest's default import mode imports each test file as a top-level module named after it.

The quick lane, ``python -m pytest -m "not slow"``, must still exercise every module, so each
mirrored file holds at least one test that is not marked ``slow``.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import jaxhash

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
PACKAGE = Path(jaxhash.__file__).parent

# Modules without a mirrored test file, and why.
EXEMPT = {
    "jaxhash.__main__": "two lines that call cli.main: `python -m jaxhash` runs in test_cli.py",
    "jaxhash.semantics.errors": "the HierarchyError class only: raised and matched in "
    "tests/semantics/test_hierarchy.py and test_wordnet.py",
}
# Modules tested in a file named for its topic rather than for the module.
TESTED_IN = {
    "jaxhash.config.demo": "tests/test_config.py",
    "jaxhash.config.kinds": "tests/config/test_config_fields.py",
    "jaxhash.config.validation": "tests/config/test_config_fields.py",
    "jaxhash.data.datasets.captions": "tests/data/test_captions.py",
    "jaxhash.data.prepare": "tests/data/datasets/test_cifar100.py",
    "jaxhash.data.split": "tests/data/datasets/test_cifar100.py",
    "jaxhash.semantics.text.cache": "tests/semantics/text/test_embedding_cache.py",
    "jaxhash.semantics.text.encoder": "tests/semantics/text/test_sentence_encoder.py",
    "jaxhash.semantics.text.packing": "tests/semantics/text/test_sentence_packing.py",
    "jaxhash.semantics.text.targets": "tests/semantics/text/test_caption_targets.py",
    "jaxhash.semantics.text.weights": "tests/semantics/text/test_model_weights.py",
    "jaxhash.data.builders": "tests/data/test_synthetic.py",
    "jaxhash.data.config": "tests/data/test_preprocess.py",
    "jaxhash.data.provenance": "tests/data/datasets/test_cifar100.py",
    # exercised there through the pipeline or the data set they serve, not on their own:
    "jaxhash.data.__init__": "tests/data/test_pipeline.py",
    "jaxhash.data.sources": "tests/data/datasets/test_synthetic_hierarchy.py",
    "jaxhash.data.stream": "tests/data/test_pipeline.py",
    "jaxhash.data.tf_setup": "tests/data/test_pipeline.py",
    "jaxhash.data.views": "tests/test_image_index.py",
}


def _modules() -> list[str]:
    """Every module of jaxhash, packages as ``<package>.__init__``."""
    names = []
    for info in pkgutil.walk_packages([str(PACKAGE)], "jaxhash."):
        names.append(f"{info.name}.__init__" if info.ispkg else info.name)
    return ["jaxhash.__init__", *sorted(names)]


def _defines_anything(module: str) -> bool:
    """Whether the module's source defines a function or class (a module that only
    re-exports names has nothing of its own to test; tests/test_public_names.py checks it)."""
    path = PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        for node in ast.walk(tree)
    )


def _test_files() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def _mirrors(module: str) -> list[Path]:
    """The test files that count for ``module`` (see the module docstring)."""
    *folders, name = module.split(".")[1:]
    places = []  # (folder, stems)
    if name == "__init__":
        if not folders:
            return []
        name = folders[-1]
        places.append((TESTS.joinpath(*folders[:-1]), {f"test_{name}"}))  # was a module
    stems = {f"test_{name}"} | ({f"test_{folders[-1]}_{name}"} if folders else set())
    places.append((TESTS.joinpath(*folders), stems))
    return [
        path
        for folder, stems in places
        for path in sorted(folder.glob("test_*.py"))
        if any(path.stem == stem or path.stem.startswith(stem + "_") for stem in stems)
    ]


def _is_slow(decorators: list[ast.expr]) -> bool:
    return any("slow" in ast.unparse(d) for d in decorators)


def _quick_tests(path: Path) -> list[str]:
    """The test functions of ``path`` not marked slow (by decorator or module ``pytestmark``)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            if "slow" in ast.unparse(node.value):
                return []
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith("test_")
        and not _is_slow(node.decorator_list)
    ]


def test_every_module_has_a_mirrored_test_file_with_a_quick_test():
    missing, only_slow = [], []
    for module in _modules():
        if module in EXEMPT or not _defines_anything(module):
            continue
        files = [ROOT / TESTED_IN[module]] if module in TESTED_IN else _mirrors(module)
        if not all(path.is_file() for path in files) or not files:
            missing.append(module)
        elif not any(_quick_tests(path) for path in files):
            only_slow.append(module)
    assert not missing, (
        f"modules without a mirrored test file: {missing}; add tests/<package>/test_<module>.py "
        "(see this file's docstring) or list the module in EXEMPT with the reason"
    )
    assert not only_slow, (
        f"modules whose tests are all marked slow: {only_slow}; leave one cheap test unmarked so "
        "the quick lane (-m 'not slow') exercises them"
    )


def test_exemptions_name_modules_that_exist():
    modules = set(_modules())
    stale = sorted(set(EXEMPT) - modules) + sorted(set(TESTED_IN) - modules)
    assert not stale, f"EXEMPT or TESTED_IN names modules that no longer exist: {stale}"


def test_test_files_import_as_top_level_modules():
    """No __init__.py under tests/, and no two test files (or helper modules) share a name."""
    inits = sorted(str(p.relative_to(ROOT)) for p in TESTS.rglob("__init__.py"))
    assert not inits, f"remove {inits}: tests/ has no packages (pytest's default import mode)"
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == "conftest.py":  # pytest imports each conftest.py on its own
            continue
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(ROOT)} and {path.relative_to(ROOT)}")
        seen[path.name] = path
    assert not clashes, f"test files share a basename: {clashes}; rename one"


# Packages of the optional extras (pyproject.toml): a module that needs one skips without it.
OPTIONAL = {"faiss", "numba", "starlette", "uvicorn", "multipart", "tokenizers", "safetensors"}


@pytest.mark.parametrize(
    "module", [m.removesuffix(".__init__") for m in _modules() if m != "jaxhash.__main__"]
)
def test_every_module_imports(module):
    """Every module imports: the quick lane loads all of them."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in OPTIONAL:
            raise
        pytest.skip(f"{module} needs the optional package {error.name}")
