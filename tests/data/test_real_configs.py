"""Every example config of a real dataset trains end to end on a fixture in that dataset's layout.

The configs in configs/ are what users copy; this checks that their task names, metrics and
model settings work with the loaders (path and sizes overridden to a small fixture).
"""

from pathlib import Path

import pytest
from real_fixtures import write_mtan, write_nyud_mt, write_pascal
from taskonomy_layout import write_taskonomy

from taskgrouper.config import load_config
from taskgrouper.data.synthetic import SceneConfig, generate
from taskgrouper.train import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _taskonomy(root: Path) -> dict:
    for i, building in enumerate(("b_train", "b_val", "b_test")):
        split = generate(6 if building == "b_train" else 3, seed=10 + i,
                         config=SceneConfig(resolution=32), tasks=["s", "d", "n", "k", "e"])
        write_taskonomy(split, root, building=building)
    (root / "split.csv").write_text("id,train,val,test\nb_train,1,0,0\nb_val,0,1,0\n"
                                    "b_test,0,0,1\n")
    return {"split": str(root / "split.csv"), "size": [32, 32], "classes": 4}


FIXTURES = {
    "taskonomy": _taskonomy,
    "nyud": lambda root: (write_nyud_mt(root, n_train=8, n_val=3, size=(32, 32)),
                          {"size": [32, 32]})[1],
    "pascal_context": lambda root: (write_pascal(root, n_train=8, n_val=3, size=(32, 32)),
                                    {"size": [32, 32]})[1],
    "cityscapes": lambda root: (write_mtan(root, n_train=8, n_val=3, size=(32, 32), classes=7,
                                           label_dir="label_7", normals=False),
                                {"size": [32, 32]})[1],
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(FIXTURES))
def test_example_config_trains_on_a_fixture(kind, tmp_path):
    root = tmp_path / kind
    root.mkdir()
    data = FIXTURES[kind](root)
    config = load_config(CONFIGS / f"{kind}.yaml", overrides={
        "data.path": str(root), **{f"data.{k}": v for k, v in data.items()},
        "data.workers": 0, "model.width": 0.25, "train.epochs": 1, "train.batch_size": 4,
        "train.device": "cpu"})
    assert config.data.kind == kind
    result = train(config, tmp_path / "run", progress=False, log=lambda m: None)
    assert set(result.test) == set(config.tasks)
    for task, metrics in result.test.items():
        spec_metrics = [m for m in metrics if m != "loss"]
        assert spec_metrics, task
        for name, value in metrics.items():
            assert value == value, f"{kind}/{task}/{name} is NaN"  # noqa: PLR0124
