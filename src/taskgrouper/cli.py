"""Command line: parse, call the API, print. No logic here that the API lacks.

Errors in the user's input (a bad config, file, name or budget: a
:class:`~taskgrouper.errors.TaskgrouperError`, or a file-system error naming a path) print one
message naming the input and the fix and exit with status 2; ``--debug`` shows the traceback
instead. Anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from taskgrouper.errors import TaskgrouperError

__all__ = ["main"]


class UsageError(TaskgrouperError):
    """Bad input on the command line itself."""


def _cmd_train(args: argparse.Namespace) -> int:
    from taskgrouper.config import load_config
    from taskgrouper.experiments.summary import format_train
    from taskgrouper.train import train

    overrides = {}
    if args.device:
        overrides["train.device"] = args.device
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    config = load_config(args.config, overrides)
    rank = int(os.environ.get("RANK", "0"))  # under torchrun, rank 0 alone speaks
    result = train(config, args.out, progress=not args.quiet and rank == 0)
    if rank == 0:
        print(format_train(result))
        print(f"wrote {args.out}/metrics.json, log.json, best.pt")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from taskgrouper.config import load_config
    from taskgrouper.experiments.search import search
    from taskgrouper.experiments.summary import format_search

    overrides = {"train.device": args.device} if args.device else {}
    config = load_config(args.config, overrides)
    results = search(config, args.out, strategies=args.strategy, workers=args.workers,
                     executor=_executor(args), progress=not args.quiet)
    print(format_search(results, args.out))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from taskgrouper.config import load_config
    from taskgrouper.experiments.bench import format_bench, run_bench

    overrides = {"train.device": args.device} if args.device else {}
    config = load_config(args.config, overrides)
    results = run_bench(config, args.out, workers=args.workers, executor=_executor(args),
                        progress=not args.quiet)
    print(format_bench(results, args.out))
    return 1 if results["failed"] else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from taskgrouper.experiments.demo import run_demo
    from taskgrouper.experiments.summary import format_search

    results = run_demo(args.out, quick=args.quick, workers=args.workers, seeds=args.seeds,
                       executor=_executor(args), progress=not args.quiet)
    print(format_search(results, args.out))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from taskgrouper.report import load_and_write

    md, html = load_and_write(args.dir)
    print(f"wrote {md} and {html}")
    return 0


def _cmd_relationships(args: argparse.Namespace) -> int:
    from taskgrouper.config import load_config
    from taskgrouper.experiments.relationships import (
        format_relationships,
        transfer_relationships,
    )

    overrides = {"train.device": args.device} if args.device else {}
    config = load_config(args.config, overrides)
    results = transfer_relationships(config, args.out, search_dir=args.search,
                                     workers=args.workers, executor=_executor(args),
                                     progress=not args.quiet)
    print(format_relationships(results, args.out))
    return 0


def _cmd_data_planted(args: argparse.Namespace) -> int:
    from taskgrouper.data.planted import read_truth, write_planted

    options = {"seed": args.seed, "correlation": args.correlation, "noise": args.noise,
               "few_label": args.few_label, "binary_every": args.binary_every,
               "n_train": args.n_train, "n_val": args.n_val, "n_test": args.n_test}
    kwargs = {k: v for k, v in options.items() if v is not None}
    if args.clusters is not None:
        kwargs["clusters"] = _cluster_option(args.clusters)
    root = write_planted(args.out, args.tasks, conflict=not args.no_conflict, force=args.force,
                         **kwargs)
    truth = read_truth(root)
    for index, group in enumerate(truth["groups"]):
        first = group[0]
        if truth["roles"][first] == "conflict":
            what = "conflict task, best alone"
        else:
            start, stop = truth["feature_blocks"][str(index)]
            few = [t for t in group if truth["roles"][t] == "few_label"]
            what = f"features {start}:{stop}" + (f", few-label {', '.join(few)}" if few else "")
        binary = [t for t in group if truth["kinds"][t] == "binary"]
        what += f", binary {', '.join(binary)}" if binary else ""
        print(f"group {index}: {' '.join(group)}  ({what})")
    p = truth["params"]
    print(f"wrote {root}: {len(truth['tasks'])} tasks, {truth['n_features']} features, "
          f"{p['n_train']}/{p['n_val']}/{p['n_test']} train/val/test samples; the truth is in "
          f"{root / 'planted.json'}")
    return 0


def _cluster_option(text: str) -> int | list[int]:
    """``--clusters``: a number of clusters (``3``) or the sizes (``4,4,3``)."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--clusters {text}: give a number of clusters (e.g. 3) or the "
                         f"cluster sizes separated by commas (e.g. 4,4,3)") from None
    return sizes[0] if "," not in text else sizes


def _executor(args: argparse.Namespace):
    """``--executor`` and the Ray options, as an executor (None: the local pool)."""
    from taskgrouper.runs.executors import build_executor

    name = getattr(args, "executor", "local")
    ray = {"address": getattr(args, "address", None),
           "num_cpus": getattr(args, "cpus_per_run", None),
           "num_gpus": getattr(args, "gpus_per_run", None),
           "max_retries": getattr(args, "max_retries", None)}
    if name == "local":
        given = [k for k, v in zip(("address", "cpus_per_run", "gpus_per_run", "max_retries"),
                                   ray.values(), strict=True) if v is not None]
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} is a Ray option; add "
                             f"--executor ray")
        return None
    return build_executor(name, getattr(args, "workers", None), **ray)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """What every command that trains many runs takes: workers, executor, device, quiet."""
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="parallel training processes")
    _add_executor_options(p)
    p.add_argument("--device", help="auto (default), cpu, cuda, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_executor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", default="local",
                   help="local (default: a process pool on this machine) or ray (a Ray "
                        "cluster; pip install 'taskgrouper[ray]')")
    p.add_argument("--address", help="ray: the cluster, 'auto' (the one `ray start` runs "
                                     "here) or HOST:PORT of its head; default: a Ray instance "
                                     "on this machine with --workers CPUs")
    p.add_argument("--cpus-per-run", type=float, help="ray: CPUs each run holds (default 1)")
    p.add_argument("--gpus-per-run", type=float, help="ray: GPUs each run holds (default 0)")
    p.add_argument("--max-retries", type=int,
                   help="ray: times a run whose worker died is started again (default 3)")


def _cmd_select(args: argparse.Namespace) -> int:
    from taskgrouper.experiments.select import select_runs
    from taskgrouper.grouping.api import format_selections, select_table
    from taskgrouper.grouping.tables import check_budgets, parse_budgets, parse_constraint

    budgets = (check_budgets([args.budget], source=f"--budget {args.budget:g}")
               if args.budget is not None else parse_budgets(args.budgets))
    constraints = dict(parse_constraint(c) for c in args.constraint)
    if args.gap is not None and not 0.0 <= args.gap < 1.0:
        raise UsageError(f"--gap {args.gap:g}: give a relative gap in [0, 1), e.g. 0.01 "
                         "for within 1% of the optimum")
    anytime = {"time_limit": args.time_limit, "gap": args.gap or 0.0,
               "progress": _progress_printer() if sys.stderr.isatty() or args.progress
               else None}
    if args.runs:
        if args.test:
            raise UsageError("select --runs scores on the runs' own test losses; drop --test")
        result = select_runs(args.runs, budgets=budgets, hoa=args.hoa,
                             constraints=constraints or None, baselines=args.baselines,
                             trials=args.trials, all_networks=args.all_networks, **anytime)
    else:
        result = select_table(args.table, fmt=args.format, budgets=budgets,
                              test_path=args.test, hoa=args.hoa,
                              constraints=constraints or None, baselines=args.baselines,
                              trials=args.trials, **anytime)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_selections(result))
    if not any(s["networks"] for s in result["selections"]):
        errors = [s.get("error") for s in result["selections"] if s.get("error")]
        print(f"taskgrouper: error: no budget is feasible; {errors[-1] if errors else ''}",
              file=sys.stderr)
        return 2
    if result.get("interrupted"):
        print("taskgrouper: interrupted: printed the selections found so far, marked as not "
              "proved", file=sys.stderr)
        return 130
    return 0


def _progress_printer():
    """A select progress callback: one line on stderr per report."""

    def show(report) -> None:
        print(report.line(), file=sys.stderr, flush=True)

    return show


def _folder(text: str) -> str:
    """``--out``: a folder name; an empty one would write into the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty folder name; give the folder to write into, "
                                         "e.g. --out runs/first")
    return text


def _positive_float(text: str) -> float:
    """``--time-limit``: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: give a number of seconds above 0")
    return value


def _positive_int(text: str) -> int:
    """``--workers``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give 1 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskgrouper",
        description="Which tasks should share a network, and how to train them.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one multi-task network from an experiment YAML")
    p.add_argument("config", help="experiment YAML (see configs/)")
    p.add_argument("--out", required=True, type=_folder,
                   help="run folder; an existing one is resumed")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--epochs", type=_positive_int, help="override train.epochs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("search", help="which tasks to train together: train candidates, "
                                      "select at every budget, report")
    p.add_argument("config", help="experiment YAML with a search section (see configs/)")
    p.add_argument("--out", required=True, type=_folder,
                   help="sweep folder; an existing one is resumed")
    p.add_argument("--strategy", help="exhaustive, esa, hoa, lookahead, gradcos "
                                      "(comma-separated for several); default: "
                                      "search.strategy of the config")
    _add_run_options(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("bench", help="architectures x balancers against single-task networks: "
                                     "the Delta_MTL table (exit 1 if some run failed)")
    p.add_argument("config", help="experiment YAML with a bench section (see configs/)")
    p.add_argument("--out", required=True, type=_folder,
                   help="bench folder; an existing one is resumed")
    _add_run_options(p)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("demo", help="the whole framework on the synthetic scenes")
    p.add_argument("--out", default="taskgrouper-demo", type=_folder,
                   help="output folder (resumable)")
    p.add_argument("--quick", action="store_true", help="three tasks, a few minutes")
    p.add_argument("--workers", type=_positive_int,
                   help="parallel training processes (default: cores)")
    p.add_argument("--seeds", type=_positive_int,
                   help="seeds per scored network (default 3; up to 100; on a finished "
                        "folder only the new seeds train)")
    _add_executor_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("report", help="write report.md and report.html from results.json "
                                      "(or bench.json)")
    p.add_argument("dir", help="a search, demo or bench folder")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("relationships",
                       help="transfer affinity (readouts on frozen single-task encoders, "
                            "Table 3) against multi-task affinity (Table 2, Figure 3)")
    p.add_argument("config", help="experiment YAML (architecture hard_sharing, 2+ tasks)")
    p.add_argument("--out", required=True, type=_folder,
                   help="folder for the runs and relationships.json/.md; an existing one is "
                        "resumed, and a search folder of the same config lends its "
                        "single-task networks and Table 2")
    p.add_argument("--search", type=_folder,
                   help="a search folder whose results.json gives the multi-task affinity "
                        "(Table 2) to correlate with (default: --out, when it holds one)")
    _add_run_options(p)
    p.set_defaults(func=_cmd_relationships)

    p = sub.add_parser("data", help="make datasets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("planted", help="a family of tasks whose best grouping is known by "
                                            "construction, in the array layout with planted.json")
    p.add_argument("--tasks", type=int, required=True, help="number of tasks, 4 to 40")
    p.add_argument("--out", required=True, type=_folder,
                   help="dataset folder (new or empty, or a planted "
                                                "family to overwrite)")
    p.add_argument("--seed", type=int, help="generator seed (default 0)")
    p.add_argument("--clusters", help="number of clusters (e.g. 3) or their sizes (e.g. 4,4,3); "
                                      "default: clusters of about four tasks")
    p.add_argument("--correlation", type=float,
                   help="correlation of noiseless tasks within a cluster (default 0.8)")
    p.add_argument("--noise", type=float, help="label noise standard deviation (default 0.3)")
    p.add_argument("--no-conflict", action="store_true", help="no conflict task")
    p.add_argument("--few-label", type=float,
                   help="plant a few-label task in every cluster of 3 or more, keeping this "
                        "fraction of its training labels (e.g. 0.2; default 0: none)")
    p.add_argument("--binary-every", type=int,
                   help="make every K-th task binary (default 0: all regression)")
    p.add_argument("--n-train", type=int, help="training samples (default 30 per input "
                   "column: 600 for 6 tasks, 1800 for 30)")
    p.add_argument("--n-val", type=int, help="validation samples (default 400)")
    p.add_argument("--n-test", type=int, help="test samples (default 1000)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder that holds no planted family")
    p.set_defaults(func=_cmd_data_planted)

    from taskgrouper.grouping.api import DEFAULT_TRIALS  # no torch: cheap

    p = sub.add_parser("select", help="choose networks under inference-time budgets")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--runs", help="a sweep folder (runs.sqlite)")
    src.add_argument("--table", help="a table of per-network losses")
    p.add_argument("--format", choices=("csv", "standley"), default="csv")
    p.add_argument("--test", help="a second table with the same networks to score the choice")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budgets", default="1:5:0.5", help="START:STOP:STEP, STOP included")
    budget.add_argument("--budget", type=float, help="one budget")
    p.add_argument("--hoa", action="store_true",
                   help="replace losses of 3+ task networks by the mean of their pairs")
    p.add_argument("--constraint", action="append", default=[], metavar="TASK<=VALUE",
                   help="the chosen set must reach this loss on TASK (repeatable)")
    p.add_argument("--all-networks", action="store_true",
                   help="--runs: choose among every fully trained run, not the search's pool "
                        "(C0 and search.selection_widths)")
    p.add_argument("--baselines", action="store_true",
                   help="also the baselines the table allows: random (budget-filling draws) "
                        "and pessimal always, all-in-one and independent where it has them")
    p.add_argument("--trials", type=_positive_int, default=DEFAULT_TRIALS,
                   help=f"random draws per budget for --baselines (default {DEFAULT_TRIALS})")
    p.add_argument("--time-limit", type=_positive_float, metavar="S",
                   help="seconds per budget: when they run out, the best selection found, "
                        "with its proved gap to the optimum (default: prove every budget)")
    p.add_argument("--gap", type=float, metavar="G",
                   help="stop a budget once proved within this relative gap of the optimum "
                        "(0.01: 1%%; default 0, optimal)")
    p.add_argument("--progress", action="store_true",
                   help="progress lines on stderr (budget, incumbent, bound, gap) even when "
                        "stderr is not a terminal")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_select)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``taskgrouper`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("taskgrouper: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (TaskgrouperError, OSError) as err:
        if args.debug or (isinstance(err, OSError) and not isinstance(err, TaskgrouperError)
                          and err.filename is None):
            raise  # an OSError naming no file is not the user's to fix
        print(f"taskgrouper: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
