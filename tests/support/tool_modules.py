"""The project's scripts (tools, test workers) as modules, to call them in the test process.

``tests/support`` is on pytest's ``pythonpath`` (pyproject.toml): ``from tool_modules import
load_module``.
"""
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Optional, Union

REPO = Path(__file__).resolve().parents[2]


def load_module(path: Union[str, Path], name: Optional[str] = None) -> ModuleType:
    """Execute a Python file as a module.

    Args:
        path: The file, absolute or relative to the repository root
            (``'tools/analysis/run_ablation.py'``).
        name: The module's name (default: the file's stem).
    """
    path = REPO / path
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
