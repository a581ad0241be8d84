"""The one build step pyproject.toml cannot say: copy the checkout's top-level
`locales/` and `config.example.toml` into the wheel as `bot/shipped/`, so an
installed wagate has its catalogs and example without a checkout. The repository
keeps them where they are; an editable install reads them there
(bot/shipped_files.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "bot" / "shipped"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(ROOT / "locales", target / "locales")
        shutil.copy2(ROOT / "config.example.toml", target / "config.example.toml")


setup(cmdclass={"build_py": BuildPyWithShippedFiles})
