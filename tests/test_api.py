"""The public API table resolves, and the rooms of the design hold (selection needs no torch)."""

from __future__ import annotations

import subprocess
import sys

import taskgrouper


def test_every_public_name_resolves():
    for name in taskgrouper.__all__:
        assert getattr(taskgrouper, name) is not None, name


def test_selection_and_tables_do_not_import_torch():
    code = ("import sys, taskgrouper as tg\n"
            "import taskgrouper.grouping.select, taskgrouper.grouping.tables\n"
            "import taskgrouper.grouping.api, taskgrouper.grouping.strategies\n"
            "tg.select([tg.Network('a', 1.0, {'a': 1.0})], budget=1.0)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
