"""Loss tables for selection: the released Standley et al. (2020) format, CSV, HOA, parsing.

Readers return :class:`~taskgrouper.grouping.select.Network` lists. Only the standard library
is used here (no torch, no numpy).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path

from taskgrouper.errors import InputError
from taskgrouper.grouping.select import Network

__all__ = [
    "MAX_BUDGETS",
    "STANDLEY_TASKS",
    "check_budgets",
    "higher_order_approximation",
    "parse_budgets",
    "parse_constraint",
    "read_csv",
    "read_standley",
]

#: Columns of the released tables: segmentation, depth, normals, keypoints, edges.
STANDLEY_TASKS = ("s", "d", "n", "k", "e")
_HALF_COST = 0.5
_FULL_COST = 1.0


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the file ({exc})") from None


def _parse_loss(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: expected a number, got {text!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise InputError(f"{where}: loss must be finite, got {text!r}")
    return value


def read_standley(path: str | Path) -> list[Network]:
    """Read a released table of Standley et al. (2020) (``shared/data/standley2020``).

    Tab-separated, five columns ``s d n k e``, no header. Line 1 holds the five half-size
    single-task networks (cost 0.5), one per column, named ``"<task>|half"``. Every later line
    is one full-size network (cost 1.0), identified by which cells are filled and named by its
    tasks in column order (``"sd"``, ``"sdnke"``); lines may be missing (results_alt_20.txt).

    Args:
        path: The table file.

    Returns:
        The networks, half-size ones first, then in file order.

    Raises:
        ValueError: Unreadable file, wrong column count, a non-numeric cell, an empty line or a
            network given twice; the message names file, line and column.
    """
    path = Path(path)
    lines = _read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{path}: empty file")
    rows: list[list[float | None]] = []
    for lineno, line in enumerate(lines, start=1):
        cells = line.rstrip("\r\n").split("\t")
        if len(cells) != len(STANDLEY_TASKS):
            raise InputError(
                f"{path}, line {lineno}: expected {len(STANDLEY_TASKS)} tab-separated columns "
                f"(s d n k e), got {len(cells)}"
            )
        row: list[float | None] = []
        for col, (task, cell) in enumerate(zip(STANDLEY_TASKS, cells, strict=True), start=1):
            cell = cell.strip()
            where = f"{path}, line {lineno}, column {col} ({task})"
            row.append(_parse_loss(cell, where) if cell else None)
        rows.append(row)
    head = rows[0]
    if any(v is None for v in head):
        raise InputError(
            f"{path}, line 1: the half-size single-task line must fill all five columns"
        )
    networks = [
        Network(f"{task}|half", _HALF_COST, {task: value})
        for task, value in zip(STANDLEY_TASKS, head, strict=True)
    ]
    seen: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        tasks = [t for t, v in zip(STANDLEY_TASKS, row, strict=True) if v is not None]
        if not tasks:
            raise InputError(f"{path}, line {lineno}: empty line (no network)")
        name = "".join(tasks)
        if name in seen:
            raise InputError(
                f"{path}, line {lineno}: network {name!r} already given on line {seen[name]}"
            )
        seen[name] = lineno
        losses = {t: v for t, v in zip(STANDLEY_TASKS, row, strict=True) if v is not None}
        networks.append(Network(name, _FULL_COST, losses))
    return networks


def read_csv(path: str | Path) -> list[Network]:
    """Read a CSV loss table: header ``network,cost,<task>,...``, one row per network.

    An empty cell means the network does not predict that task.

    Args:
        path: The CSV file.

    Returns:
        The networks, in file order.

    Raises:
        ValueError: Missing or unreadable file, bad header, no task columns, a non-numeric or
            negative cost, a non-numeric or non-finite loss, a duplicate network name; the
            message names the file, row and column.
    """
    path = Path(path)
    text = _read_text(path)
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError(f"{path}: empty file; expected a header network,cost,<task>,...") from None
    except csv.Error as exc:
        raise InputError(f"{path}, row 1: malformed CSV ({exc})") from None
    if len(header) < 2 or header[0].lower() != "network" or header[1].lower() != "cost":
        raise InputError(
            f"{path}, row 1: header must start with network,cost then one column per task; "
            f"got {','.join(header)!r}"
        )
    tasks = header[2:]
    if not tasks:
        raise InputError(f"{path}, row 1: no task columns after network,cost")
    for col, task in enumerate(tasks, start=3):
        if not task:
            raise InputError(f"{path}, row 1, column {col}: empty task name")
    if len(set(tasks)) != len(tasks):
        raise InputError(f"{path}, row 1: duplicate task column in {tasks}")
    networks: list[Network] = []
    seen: dict[str, int] = {}
    try:
        for rowno, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise InputError(
                    f"{path}, row {rowno}: expected {len(header)} cells, got {len(row)}"
                )
            name = row[0].strip()
            if not name:
                raise InputError(f"{path}, row {rowno}, column 1 (network): empty network name")
            if name in seen:
                raise InputError(
                    f"{path}, row {rowno}, column 1 (network): duplicate network name {name!r} "
                    f"(first on row {seen[name]})"
                )
            seen[name] = rowno
            where = f"{path}, row {rowno}, column 2 (cost)"
            try:
                cost = float(row[1])
            except ValueError:
                raise InputError(f"{where}: expected a number, got {row[1]!r}") from None
            if not math.isfinite(cost) or cost < 0:
                raise InputError(f"{where}: cost must be finite and >= 0, got {row[1]!r}")
            losses = {}
            for col, (task, cell) in enumerate(zip(tasks, row[2:], strict=True), start=3):
                if cell.strip():
                    where = f"{path}, row {rowno}, column {col} ({task})"
                    losses[task] = _parse_loss(cell.strip(), where)
            networks.append(Network(name, cost, losses))
    except csv.Error as exc:
        raise InputError(f"{path}, row {reader.line_num}: malformed CSV ({exc})") from None
    if not networks:
        raise InputError(f"{path}: no network rows after the header")
    uncovered = [t for t in tasks if not any(t in n.losses for n in networks)]
    if uncovered:
        raise InputError(f"{path}: no network predicts task(s) {', '.join(map(repr, uncovered))}"
                         "; every task column needs a loss in at least one row (or drop the "
                         "column)")
    return networks


def higher_order_approximation(networks: Sequence[Network]) -> list[Network]:
    """Higher-order approximation (HOA, Standley et al. 2020, Sec. 3.3.2).

    Every network with three or more tasks gets, for each of its tasks, the mean of that
    task's loss over the two-task networks of the same cost whose tasks are a subset of its
    own. Other networks are returned unchanged.

    Args:
        networks: Candidate networks, including the two-task ones.

    Returns:
        New networks in the same order.

    Raises:
        ValueError: A network with three or more tasks has a task that no same-cost two-task
            sub-network predicts (names the network and the task).
    """
    pairs: dict[tuple[float, frozenset[str]], Network] = {}
    for net in networks:
        if len(net.losses) == 2:
            pairs[(float(net.cost), frozenset(net.losses))] = net
    out = []
    for net in networks:
        if len(net.losses) < 3:
            out.append(net)
            continue
        losses = {}
        for task in net.losses:
            values = [
                pairs[key].losses[task]
                for other in net.losses
                if other != task
                and (key := (float(net.cost), frozenset((task, other)))) in pairs
            ]
            if not values:
                raise InputError(
                    f"HOA: network {net.name!r} has no two-task sub-network of cost "
                    f"{net.cost:g} predicting task {task!r}"
                )
            losses[task] = math.fsum(values) / len(values)
        out.append(Network(net.name, net.cost, losses))
    return out


_RANGE_HELP = "expected START:STOP:STEP with STEP > 0, e.g. 1:5:0.5"


def parse_budgets(text: str) -> list[float]:
    """Parse ``START:STOP:STEP`` (STOP included) or a single number into budgets.

    ``"1:5:0.5"`` gives the paper's nine budgets 1, 1.5, ..., 5. Values are rounded to 12
    significant digits so float steps do not drift (0.1 steps give 0.3, not 0.30000000000000004).

    Raises:
        ValueError: A malformed range (the message shows the expected form), a budget that
            is not positive, or a range of more than :data:`MAX_BUDGETS` budgets.
    """
    parts = text.strip().split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"budgets {text!r}: {_RANGE_HELP}") from None
    if any(not math.isfinite(v) for v in values):
        raise InputError(f"budgets {text!r}: {_RANGE_HELP}")
    if len(values) == 1:
        return check_budgets(values, source=f"budgets {text!r}")
    if len(values) != 3:
        raise InputError(f"budgets {text!r}: {_RANGE_HELP}")
    start, stop, step = values
    if step <= 0 or stop < start:
        raise InputError(f"budgets {text!r}: {_RANGE_HELP} and START <= STOP")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_BUDGETS:
        raise InputError(f"budgets {text!r}: {count:.3g} budgets, over the {MAX_BUDGETS:,} one "
                         f"selection sweep takes; use a larger STEP (e.g. "
                         f"{start:g}:{stop:g}:{(stop - start) / 10 or 1:.3g} for 11 budgets)")
    return check_budgets([float(f"{start + k * step:.12g}") for k in range(count)],
                         source=f"budgets {text!r}")


#: Most budgets one selection sweep takes (each is an exact optimisation).
MAX_BUDGETS = 10_000


def check_budgets(budgets: Sequence[float], source: str = "budget") -> list[float]:
    """``budgets`` as floats, each finite and positive.

    Raises:
        ValueError: a budget that is not a positive finite number (names ``source``).
    """
    out = []
    for budget in budgets:
        value = float(budget)
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"{source}: a budget is an inference cost in SNT and must be a "
                             f"positive number, got {budget!r}")
        out.append(value)
    if len(out) > MAX_BUDGETS:
        raise InputError(f"{source}: {len(out)} budgets, over the {MAX_BUDGETS:,} one selection "
                         f"sweep takes")
    return out


_CONSTRAINT = re.compile(r"^\s*([^<>=]*[^<>=\s])\s*<=\s*(\S+)\s*$")


def parse_constraint(text: str) -> tuple[str, float]:
    """Parse ``TASK<=VALUE`` (e.g. ``"d<=0.17"``) into ``(task, value)``.

    Raises:
        ValueError: Not of that form or VALUE is not a finite number.
    """
    match = _CONSTRAINT.match(text)
    value = math.nan
    if match:
        try:
            value = float(match.group(2))
        except ValueError:
            value = math.nan
    if not match or not math.isfinite(value):
        raise InputError(f"constraint {text!r}: expected TASK<=VALUE, e.g. d<=0.17")
    return match.group(1), value
