"""What each optional stack adds to the core install (README "Install: which extras").

pip's dry-run resolution (``--ignore-installed``, so the whole set counts) of the core
requirements and of core + each extra, then the sizes of the installed files of those
distributions in this environment (so run it in a venv that has ``.[all]`` or ``.[test]``).
Keep CORE / EXTRAS in step with ``pyproject.toml``. Usage: ``python benchmarks/install_size.py``.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import tempfile

CORE = ["torch>=2.4", "torchvision>=0.19", "pyiqa>=0.1.13", "transformers>=4.40", "datasets>=2.19",
        "pandas>=2.0", "mlflow>=3.0", "typer>=0.12", "rich>=13", "numpy>=1.26", "scipy>=1.11",
        "scikit-image>=0.22", "matplotlib>=3.8", "pillow>=10", "psutil>=5.9", "bm3d>=4.0",
        "opencv-python-headless>=4.8", "huggingface_hub>=0.23", "pyyaml>=6"]
EXTRAS = {"ldrps": ["diffusers>=0.30"], "detect": ["ultralytics>=8.4"], "ray": ["ray>=2.9"],
          "test tools": ["pytest>=8", "ruff>=0.5", "selenium>=4.20"]}


def resolve(specs: list[str]) -> set[str]:
    """Distribution names pip would install for ``specs`` into an empty environment."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
                        "--report", report, *specs], check=True, capture_output=True)
        with open(report) as handle:
            return {item["metadata"]["name"].lower() for item in json.load(handle)["install"]}


def size_gb(names: set[str]) -> float:
    """Installed size of ``names`` here (files listed in each distribution's RECORD)."""
    total = 0
    for name in names:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            print(f"  (not installed here: {name})")
            continue
        for file in dist.files or []:
            try:
                total += os.path.getsize(dist.locate_file(file))
            except OSError:
                continue
    return total / 1e9


def main() -> None:
    core = resolve(CORE)
    print(f"core: {len(core)} packages, {size_gb(core):.2f} GB")
    for name, specs in EXTRAS.items():
        extra = resolve(CORE + specs) - core
        print(f"+{name}: {len(extra)} packages, {size_gb(extra):.3f} GB: {' '.join(sorted(extra))}")


if __name__ == "__main__":
    main()
