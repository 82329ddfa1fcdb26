"""Typed experiment configuration: YAML in, unknown keys rejected with the closest known key.

An experiment YAML has the sections ``data``, ``tasks``, ``model``, ``balancer``, ``train`` and
(for ``search``) ``search``; see ``configs/`` for examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from taskgrouper.errors import InputError, TaskgrouperError
from taskgrouper.tasks import check_task_name, closest

__all__ = [
    "BalancerConfig",
    "BenchConfig",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "GridConfig",
    "ModelConfig",
    "SearchConfig",
    "TrainConfig",
    "load_config",
    "parse_config",
    "run_identity",
]

#: The datasets, one row each: ``data.kind`` -> the module under ``taskgrouper.data`` whose
#: ``load(cfg, tasks)`` returns its :class:`~taskgrouper.data.MultiTaskData`. A new dataset is
#: that module and one row here.
DATASETS: dict[str, str] = {
    "synthetic": "synthetic",
    "arrays": "arrays",
    "taskonomy": "taskonomy",
    "nyud": "nyud",
    "pascal_context": "pascal_context",
    "cityscapes": "cityscapes",
}
#: Accepted ``data.kind`` values.
DATA_KINDS = tuple(DATASETS)


def _default_workers() -> int:
    import os

    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores - 2)


class ConfigError(TaskgrouperError):
    """A configuration problem; the message names the file, the key and the fix."""


def _takes_bool(annotation: Any) -> bool:
    """Whether a field's annotation admits a bool (``bool``, ``bool | Literal["auto"]``,
    ``Any``)."""
    if annotation is bool or annotation is Any:
        return True
    return any(_takes_bool(a) for a in getattr(annotation, "__args__", ()))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # YAML's true/false would otherwise pass as 1/0 for a number ("epochs: true")
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and not _takes_bool(field.annotation):
            raise InputError(f"expected {_kind_of(field.annotation)}, not {str(value).lower()}")
        return value


def _kind_of(annotation: Any) -> str:
    names = {int: "a whole number", float: "a number", str: "text"}
    for a in (annotation, *getattr(annotation, "__args__", ())):
        if a in names:
            return names[a]
    return "a value of another type"


class DataConfig(_Section):
    """Where the inputs and labels come from."""

    kind: str = "synthetic"
    path: str | None = None
    # synthetic scenes
    n_train: int = Field(1200, ge=1)
    n_val: int = Field(200, ge=1)
    n_test: int = Field(200, ge=1)
    resolution: int = Field(64, ge=32, le=256)
    seed: int = 0
    texture_strength: float = Field(0.7, ge=0.0, le=1.0)
    class_follows_shape: float = Field(1.0, ge=0.0, le=1.0)
    #: Camera field of view in degrees (narrower: larger objects in the image).
    fov_deg: float = Field(60.0, ge=10.0, le=120.0)
    #: Fewest and most objects in a scene.
    min_objects: int = Field(3, ge=0, le=12)
    max_objects: int = Field(8, ge=0, le=12)
    cache: bool = True
    # real datasets read from disk (taskonomy, nyud, pascal_context, cityscapes)
    #: Images and labels are resized to [height, width]; null keeps each dataset's default.
    size: tuple[int, int] | None = None
    #: Dataset-specific split: Taskonomy "tiny", "medium", "full", "fullplus" or a split CSV;
    #: NYUD layout "auto", "nyud_mt" or "mtan"; otherwise unused.
    split: str | None = None
    #: Classes of the label maps where a dataset ships several (Cityscapes 7 or 19).
    classes: int | None = None
    #: Fraction of the official training images held out as the validation split, for
    #: datasets that publish only train and val (the official val becomes the test split).
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    #: Cap on samples per split (0: all); handy for smoke runs on a large dataset.
    limit: int = Field(0, ge=0)
    #: DataLoader worker processes that decode files during training (0: in the main process).
    #: Default: 0 with two cores or fewer (measured there, bench/bench_data_loading.py: workers
    #: compete with the training step's own threads and slow an epoch down), else
    #: min(8, cores - 2).
    workers: int = Field(default_factory=lambda: _default_workers(), ge=0)
    #: Decode the whole dataset into memory before training (true), stream it from the files
    #: (false), or "auto": into memory when it takes less than ``memory_gb``.
    in_memory: bool | Literal["auto"] = "auto"
    memory_gb: float = Field(4.0, gt=0.0)

    @field_validator("max_objects")
    @classmethod
    def _objects_in_order(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_objects")
        if low is not None and value < low:
            raise InputError(f"data.max_objects ({value}) is below data.min_objects ({low}); "
                             f"raise max_objects or lower min_objects")
        return value

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in DATA_KINDS:
            raise InputError(f"unknown data kind '{value}'; {closest(value, DATA_KINDS)}")
        return value


class ModelConfig(_Section):
    """The network: backbone, width multiplier, multi-task architecture."""

    backbone: str = "xception"
    width: float = Field(1.0, gt=0.0, le=4.0)
    architecture: str = "hard_sharing"
    #: The architecture's own settings (its row of ``models.arch.ARCH_TABLE`` lists them).
    options: dict[str, Any] = Field(default_factory=dict)
    #: Hidden sizes at width 1 of the ``mlp`` backbone (null: 256, 256). A small encoder makes
    #: tasks compete for capacity, as on planted task families.
    hidden: list[int] | None = Field(None, min_length=1)
    #: Channel multiplier of the width-1 (1 SNT) encoder of an image backbone: a narrower or
    #: wider network as the unit of cost (a width-w network has ``scale * sqrt(w)`` of the
    #: reference channels and costs w SNT). Small networks trained to convergence on a CPU.
    scale: float = Field(1.0, gt=0.0, le=4.0)

    @field_validator("hidden")
    @classmethod
    def _positive_hidden(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(h < 1 for h in value):
            raise InputError(f"hidden sizes must be at least 1, got {value}")
        return value


class BalancerConfig(_Section):
    """How task losses are combined: a balancer name and its parameters."""

    name: str = "uniform"
    weights: dict[str, float] | None = None
    #: The balancer's own settings (its row of ``balancing.BALANCERS`` lists them).
    options: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Section):
    """Optimiser, schedule, stopping and device."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["plateau", "poly", "none"] = "plateau"
    poly_power: float = Field(0.9, gt=0.0)
    patience: int = Field(3, ge=1)
    #: ``plateau``: training ends once the halved learning rate falls below this (the
    #: schedule has run its course); null: it runs until early stopping or ``epochs``.
    min_lr: float | None = Field(None, gt=0.0)
    #: Record task affinities (lookahead and gradient cosine, see
    #: :mod:`taskgrouper.train.affinity`) at the first and every k-th training step (0: off).
    affinity_every: int = Field(0, ge=0)
    train_fraction: float = Field(1.0, gt=0.0, le=1.0)
    #: ``flip``: mirror each training image and its dense labels left-right with probability
    #: 1/2 (Standley et al.'s training; :mod:`taskgrouper.train.augment`); ``none``: as stored.
    augment: Literal["none", "flip"] = "none"
    #: Keep an exponential moving average of the weights with this decay per step and
    #: validate, keep and test the averaged network (:mod:`taskgrouper.train.averaging`);
    #: null: the optimiser's own weights.
    ema: float | None = Field(None, gt=0.0, lt=1.0)
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # channels_last made CPU conv training 17-28% faster here (bench/bench_train.py), and is
    # what tensor cores want on GPUs; "auto" uses it for image inputs.
    memory_format: Literal["auto", "contiguous", "channels_last"] = "auto"
    threads: int | None = Field(None, ge=1)
    eval_batch_size: int = Field(128, ge=1)


class SearchConfig(_Section):
    """Task-grouping search settings (used by ``taskgrouper search``)."""

    #: One name or a comma-separated list: exhaustive, esa, hoa, lookahead, gradcos.
    strategy: str = "exhaustive"
    budgets: str = "1:5:0.5"  # START:STOP:STEP, STOP included (the paper's nine budgets)
    esa_fraction: float = Field(0.2, gt=0.0, le=1.0)  # ESA: one pass through this fraction
    esa_epochs: int = Field(1, ge=1)  # ESA: passes over that fraction
    random_trials: int = Field(1000, ge=1)  # the "random groupings" baseline
    #: Most tasks one network may predict (null: any). Needed above 20 tasks, where every
    #: subset would be too many networks.
    max_group_size: int | None = Field(None, ge=1)
    #: Widths of further single-task networks selection may choose (e.g. [0.2, 0.25]). The
    #: paper's pool (C0) is every subset at full width and each task alone at half width; its
    #: narrower single-task networks serve the independent baseline only.
    selection_widths: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(default_factory=list)
    #: Widths (costs in SNT) of the all-task baselines, uniform and MGDA-UB (null: 1 and every
    #: whole-number budget above it); each budget fields the best that fits.
    baseline_widths: list[Annotated[float, Field(gt=0.0, le=16.0)]] | None = None
    #: Train the all-task network with MGDA-UB too (Sener and Koltun, the paper's baseline).
    mgda_baseline: bool = True
    #: lookahead, gradcos: the all-task run records affinities at every this many steps.
    affinity_every: int = Field(5, ge=1)
    #: lookahead, gradcos: each task's this many highest-affinity partners are trained as
    #: pairs to fit the affinity loss model (0: fit on the all-task network alone).
    calibration_pairs: int = Field(1, ge=0)
    #: Seconds each budget's exact selection may take, and the exact pessimal
    #: baseline's (null: no limit). A proof cut short keeps the best selection found and
    #: reports its gap to the bound.
    select_time_limit: float | None = Field(60.0, gt=0.0)
    #: Seeds every scored network trains with (the chosen networks at every budget and the
    #: all-in-one, independent and MGDA-UB baselines' networks): ``train.seed`` and the next
    #: ``seeds - 1``. Selection stays on the first seed's validation losses; every method is
    #: scored on each seed, so methods pair by seed (mean and 95% interval in results.json).
    seeds: int = Field(1, ge=1, le=100)
    #: Which trained weights (``runs/<id>/best.pt``) the folder keeps once the search is done:
    #: ``chosen``, the networks some strategy chose at some budget (what a user deploys; the
    #: store keeps every run's results either way), or ``all``.
    keep_weights: Literal["chosen", "all"] = "chosen"
    #: After the candidates, also train the transfer readouts (task j on the frozen encoder of
    #: task i's full-width single-task network, for every ordered pair) and report transfer
    #: affinity (Table 3) and its correlation with multi-task affinity (Figure 3) under
    #: ``relationships.transfer`` in results.json. Needs architecture hard_sharing.
    transfer: bool = False


#: Optimisers a training run (and a bench grid) may use.
OPTIMIZERS = ("sgd", "adam")


class GridConfig(_Section):
    """A hyperparameter grid (Vandenhende et al. 2021, Table IV): every combination trains.

    A list left out keeps the ``train`` section's value. ``lr`` is one list for every optimiser
    or, as in Table IV, one list per optimiser (``{sgd: [1e-3, 5e-3], adam: [1e-4]}``).
    """

    optimizer: list[Literal["sgd", "adam"]] | None = Field(None, min_length=1)
    batch_size: list[int] | None = Field(None, min_length=1)
    lr: list[float] | dict[str, list[float]] | None = None

    @field_validator("batch_size")
    @classmethod
    def _positive_batches(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(b < 1 for b in value):
            raise InputError(f"batch sizes must be at least 1, got {value}")
        return value

    @field_validator("lr")
    @classmethod
    def _positive_rates(cls, value):
        if value is None:
            return value
        lists = value.values() if isinstance(value, dict) else [value]
        if isinstance(value, dict):
            for key in value:
                if key not in OPTIMIZERS:
                    raise InputError(f"lr: unknown optimizer '{key}'; {closest(key, OPTIMIZERS)}")
        for rates in lists:
            if not rates or any(not r > 0 for r in rates):
                raise InputError(f"learning rates must be non-empty lists of positive numbers, "
                                 f"got {rates}")
        return value


class BenchConfig(_Section):
    """Benchmark settings (``taskgrouper bench``; Vandenhende et al. 2021, Sec. 4.1).

    Which architecture x balancer models to train: every pair of ``architectures`` (default:
    every row of ``models.arch.ARCH_TABLE``) and ``balancers`` (default: every row of
    ``balancing.BALANCERS``), or, when ``pairs`` is given, exactly those pairs, where ``"*"``
    stands for every name of the corresponding list (``[["*", uniform], [hard_sharing, "*"]]``
    is the survey's Table V: every architecture with one balancer, every balancer with the
    MTL baseline). Names are checked against the tables when the bench runs.
    """

    architectures: list[str] | None = Field(None, min_length=1)
    balancers: list[str] | None = Field(None, min_length=1)
    pairs: list[tuple[str, str]] | None = Field(None, min_length=1)
    grid: GridConfig | None = None
    #: Architecture name -> its ``model.options`` (``model.options`` itself applies to
    #: ``model.architecture``).
    model_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Balancer name -> its ``balancer.options`` (``balancer.options`` itself applies to
    #: ``balancer.name``).
    balancer_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: What Delta_MTL averages over: ``headline``, one metric per task (each task's first:
    #: mIoU for segmentation, RMSE for depth, mean angle for normals, odsF for edges, maxF for
    #: saliency), as the survey's Eq. 10 and Table V; ``all``, every (task, metric) pair.
    delta_metrics: Literal["headline", "all"] = "headline"
    #: Seeds per model and per single-task baseline (``train.seed`` and the next ones). The
    #: grid point is chosen on the first seed's validation; the other seeds repeat the chosen
    #: point, and Delta_MTL is reported as the mean over seeds with its 95% interval (seed k
    #: of a model against seed k of the single-task networks).
    seeds: int = Field(1, ge=1, le=100)
    #: Architectures with a ``pretrained`` option (cross-stitch, NDDR-CNN) start from the
    #: bench's own single-task networks of the same seed and grid point, as their papers
    #: initialise them; false: from scratch (or what ``model_options`` gives).
    single_task_init: bool = True


class ExperimentConfig(_Section):
    """A whole experiment."""

    data: DataConfig = Field(default_factory=DataConfig)
    tasks: list[str] | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    balancer: BalancerConfig = Field(default_factory=BalancerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    search: SearchConfig | None = None
    # Left out of dumps: a run's identity (and id) never depends on the bench it belongs to.
    bench: BenchConfig | None = Field(None, exclude=True)

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if not value:
            raise InputError("no task listed; list task names, or leave 'tasks' out for every "
                             "task of the dataset")
        seen = set()
        for name in value:
            check_task_name(name)
            if name in seen:
                raise InputError(f"task '{name}' is listed twice; list each task once")
            seen.add(name)
        return value


def run_identity(config: ExperimentConfig) -> dict:
    """The parts of a config that define a run: two configs with equal identities are the same
    run (a run folder holding one resumes under the other).

    How and where it trains (device, thread count, evaluation batch size) and how the data is
    fed (workers, in memory or streamed) do not change what is learned, and the ``search``
    section is the sweep's, not the run's; all are left out.
    """
    dump = config.model_dump(mode="json")
    dump["train"] = {k: v for k, v in dump["train"].items()
                     if k not in ("device", "threads", "eval_batch_size")}
    # how the data is fed does not change what is learned
    dump["data"] = {k: v for k, v in dump["data"].items()
                    if k not in ("workers", "in_memory", "memory_gb")}
    for key, default in (("fov_deg", 60.0), ("min_objects", 3), ("max_objects", 8)):
        if dump["data"].get(key) == default:  # scene settings added later: only when set
            dump["data"].pop(key, None)
    dump.pop("search", None)
    # settings added after runs were stored count only when set, so older runs resume
    for key in ("affinity_every", "min_lr", "ema"):
        if not dump["train"].get(key):
            dump["train"].pop(key, None)
    if dump["train"].get("augment") == "none":
        dump["train"].pop("augment")
    if dump["model"].get("hidden") is None:
        dump["model"].pop("hidden", None)
    if dump["model"].get("scale") == 1.0:
        dump["model"].pop("scale", None)
    return dump


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``loc`` (a pydantic error location) in ``model``."""
    current: type[BaseModel] = model
    for part in loc[:-1]:
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        current = nested[0]
    return list(current.model_fields)


def parse_config(raw: Any, source: str = "config") -> ExperimentConfig:
    """Validate a mapping (e.g. parsed YAML) into an :class:`ExperimentConfig`.

    Raises:
        ConfigError: naming every bad key, with the closest valid key for unknown ones.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (data, tasks, model, "
                          f"balancer, train), got {type(raw).__name__}")
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = tuple(e["loc"])
            key = ".".join(str(p) for p in loc)
            if e["type"] == "extra_forbidden":
                known = _known_keys(ExperimentConfig, loc)
                hint = closest(str(loc[-1]), known) if known else ""
                problems.append(f"unknown key '{key}'; {hint}")
            else:
                msg = e["msg"].removeprefix("Value error, ")
                problems.append(f"'{key}': {msg} (got {e.get('input')!r})")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read an experiment YAML file.

    Args:
        path: The YAML file.
        overrides: Dotted keys to set after reading, e.g. ``{"train.device": "cpu"}``.

    Raises:
        ConfigError: the file is missing, not YAML, or has bad keys or values.
    """
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.y*ml"))[:5]
        raise ConfigError(f"config '{path}' is a folder, not a file; pass the experiment YAML "
                          + (f"(it holds {', '.join(inside)})" if inside
                             else "(examples in configs/)"))
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; pass the path of an experiment "
                          f"YAML (examples in configs/)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}); fix the syntax") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read ({err})") from None
    if raw is None:
        raise ConfigError(f"config file '{path}' is empty; write at least one section (e.g. "
                          f"'data: {{kind: synthetic}}'), see configs/synthetic.yaml")
    for dotted, value in (overrides or {}).items():
        if not isinstance(raw, dict):
            break  # parse_config reports the malformed file
        node = raw
        *parents, last = dotted.split(".")
        for depth, part in enumerate(parents, start=1):
            if node.get(part) is None:  # a section left empty ("train:") takes the override
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                key = ".".join(parents[:depth])
                raise ConfigError(f"{path}: '{key}' must be a mapping of settings, got "
                                  f"{node!r}; write e.g. '{key}: {{{last}: ...}}'")
        node[last] = value
    return parse_config(raw, source=str(path))
