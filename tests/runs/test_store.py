"""The result store: round trip, idempotence, refusals with clear messages, atomic writes."""

import dataclasses
import math
import sqlite3

import pytest

from taskgrouper.runs import SCHEMA_VERSION, RunRecord, RunSpec, RunStore, StoreError
from taskgrouper.runs.store import make_run_id
from taskgrouper.train import TrainResult

CONFIG = {"data": {"kind": "synthetic"}, "tasks": ["s", "d"],
          "model": {"backbone": "xception", "width": 0.5},
          "train": {"epochs": 2, "train_fraction": 0.25, "device": "cpu"}}


def make_record(run_id="cand-s+d", group="candidate", **changes) -> RunRecord:
    record = RunRecord(
        id=run_id, group=group, config=CONFIG, tags={"tasks": ["s", "d"], "note": "x"},
        tasks=["s", "d"],
        val={"s": {"loss": 1.25, "miou": 0.5}, "d": {"loss": 0.75, "l1": 0.125}},
        test={"s": {"loss": 1.5, "miou": 0.25}, "d": {"loss": 0.5, "l1": 0.0625}},
        constant_test={"s": {"loss": 2.0, "miou": 0.1}, "d": {"loss": 1.0, "l1": 0.3}},
        cost={"macs": 123456, "params": 789, "snt": 0.5}, train_samples=2400,
        wall_s=12.5, best_epoch=2, epochs_run=2, finished_at="2026-01-01T00:00:00+00:00")
    return dataclasses.replace(record, **changes)


def test_round_trip_survives_reopening(tmp_path):
    a, b = make_record("a"), make_record("b", group="esa", tasks=["s"],
                                         val={"s": {"loss": 0.1, "miou": 0.9}})
    with RunStore(tmp_path) as store:  # a folder: the store is <folder>/runs.sqlite
        assert store.record(a) is True
        assert store.record(b) is True
        assert store.get("a") == a and store.get("missing") is None
    with RunStore(tmp_path / "runs.sqlite") as store:
        assert store.get("a") == a and store.get("b") == b
        assert store.done_ids() == {"a", "b"} and len(store) == 2 and "a" in store
        assert store.records() == [a, b]
        assert store.records(group="esa") == [b] and store.records(group="none") == []
        # task order and metric order come back as written
        assert list(store.get("a").val) == ["s", "d"]
        assert list(store.get("a").val["s"]) == ["loss", "miou"]


def test_a_new_path_is_a_folder_unless_it_names_a_database_file(tmp_path):
    with RunStore(tmp_path / "sweep") as store:  # does not exist yet: a folder
        assert store.path == tmp_path / "sweep" / "runs.sqlite"
    with RunStore(tmp_path / "elsewhere" / "mine.sqlite") as store:
        assert store.path == tmp_path / "elsewhere" / "mine.sqlite"
        store.record(make_record())
    with RunStore(tmp_path / "elsewhere" / "mine.sqlite") as store:
        assert store.done_ids() == {"cand-s+d"}


def test_columns_are_queryable(tmp_path):
    with RunStore(tmp_path) as store:
        store.record(make_record())
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        row = db.execute('SELECT "group", width, fraction, cost_snt, macs, params, tasks '
                         "FROM runs").fetchone()
        assert row == ("candidate", 0.5, 0.25, 0.5, 123456, 789, '["s", "d"]')
        val_d = db.execute("SELECT value FROM metrics WHERE split = 'val' AND task = 'd' "
                           "AND name = 'loss'").fetchone()
        assert val_d == (0.75,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)


def test_nan_metric_comes_back_as_nan(tmp_path):
    record = make_record(val={"s": {"loss": math.nan, "miou": 0.5}, "d": {"loss": 0.75}})
    with RunStore(tmp_path) as store:
        store.record(record)
        back = store.get(record.id)
        assert math.isnan(back.val["s"]["loss"]) and back.val["d"] == {"loss": 0.75}
        assert store.record(record) is False  # NaN == NaN for idempotence


def test_identical_re_record_is_a_no_op(tmp_path):
    with RunStore(tmp_path) as store:
        assert store.record(make_record()) is True
        later = make_record(finished_at="2030-01-01T00:00:00+00:00")
        assert store.record(later) is False
        assert store.get(later.id).finished_at == "2026-01-01T00:00:00+00:00"
        assert len(store) == 1


def test_conflicting_re_record_is_refused_and_keeps_the_first(tmp_path):
    first = make_record()
    with RunStore(tmp_path) as store:
        store.record(first)
        with pytest.raises(StoreError, match=r"run 'cand-s\+d' is already stored .* "
                                             r"different test, wall_s"):
            store.record(make_record(test={"s": {"loss": 9.0}}, wall_s=1.0))
        assert store.get(first.id) == first


def test_newer_schema_is_refused(tmp_path):
    RunStore(tmp_path).close()
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                   (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match=rf"runs.sqlite' has schema version "
                                         rf"{SCHEMA_VERSION + 1}.*upgrade taskgrouper"):
        RunStore(tmp_path)


def test_version_1_store_is_migrated_and_keeps_its_runs(tmp_path):
    """A store written before runs.extra existed: its runs read back with extra == {} and new
    runs store their extra."""
    with RunStore(tmp_path) as store:
        store.record(make_record())
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:  # make it a version-1 file
        db.execute("ALTER TABLE runs DROP COLUMN extra")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with RunStore(tmp_path) as store:
        old = store.get(make_record().id)
        assert old is not None and old.extra == {}
        new = make_record("cand-x", extra={"affinity": {"tasks": ["s"], "lookahead": [[0.5]]}})
        store.record(new)
        assert store.get("cand-x").extra == new.extra
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)


def test_corrupt_file_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError) as info:
        RunStore(path)
    assert str(path) in str(info.value)
    assert "not a readable run store" in str(info.value) and "delete it" in str(info.value)


def test_other_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE things (x)")
    with pytest.raises(StoreError, match="not a taskgrouper run store"):
        RunStore(path)


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    # The runs row and the first metric rows are inserted before "oops" fails float().
    bad = make_record(test={"s": {"loss": 1.0, "miou": "oops"}})
    with RunStore(tmp_path) as store:
        with pytest.raises(ValueError):
            store.record(bad)
        assert store.get(bad.id) is None and store.done_ids() == set()
        good = make_record()
        assert store.record(good) is True  # the store is still usable, the id still free
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)
        # 2 splits x 2 tasks x 2 metrics + constant_test 2 x 2 = 12 rows, all from `good`
        assert db.execute("SELECT COUNT(*) FROM metrics").fetchone() == (12,)


def test_closed_store_says_so(tmp_path):
    store = RunStore(tmp_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.done_ids()


def test_record_from_train_result(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    result = TrainResult(out_dir=str(tmp_path), tasks=["d", "s"],
                         val={"d": {"loss": 0.5}, "s": {"loss": 1.0}},
                         test={"d": {"loss": 0.6}, "s": {"loss": 1.1}},
                         constant_test={"d": {"loss": 1.0}, "s": {"loss": 2.0}},
                         best_epoch=3, epochs_run=4, train_samples=400, wall_s=2.5,
                         cost={"macs": 10, "params": 5, "snt": 0.25})
    spec = RunSpec("run-1", "candidate", CONFIG, {"k": 1})
    record = RunRecord.from_result(spec, result)
    assert record.spec == spec and record.tasks == ["d", "s"]
    assert record.val_losses == {"d": 0.5, "s": 1.0} and record.test_losses["s"] == 1.1
    assert (record.width, record.fraction) == (0.5, 0.25)
    assert (record.best_epoch, record.epochs_run, record.train_samples) == (3, 4, 400)
    # finished_at is when metrics.json was written, so re-reading a run gives the same record
    assert RunRecord.from_result(spec, result) == record
    assert record.finished_at.endswith("+00:00")


def test_run_ids_are_folder_names():
    for bad in ["", "../escape", "a/b", ".hidden", "x" * 201, "with space"]:
        with pytest.raises(ValueError, match="cannot be a folder name"):
            RunSpec(bad, "candidate", CONFIG)


def test_make_run_id_is_deterministic_and_ignores_the_device():
    cpu = make_run_id("candidate", CONFIG)
    assert cpu.startswith("candidate-s+d-w0.5-")
    cuda = {**CONFIG, "train": {**CONFIG["train"], "device": "cuda", "threads": 4}}
    assert make_run_id("candidate", cuda) == cpu
    # a default written out is the same run
    explicit = {**CONFIG, "train": {**CONFIG["train"], "seed": 0}}
    assert make_run_id("candidate", explicit) == cpu
    other = {**CONFIG, "train": {**CONFIG["train"], "lr": 0.5}}
    assert make_run_id("candidate", other) != cpu
    assert RunSpec.create("esa", CONFIG).id == make_run_id("esa", CONFIG)


def test_a_reader_sees_each_run_once_it_is_committed(tmp_path):
    with RunStore(tmp_path) as writer, RunStore(tmp_path) as reader:
        assert reader.done_ids() == set()
        writer.record(make_record("a"))
        assert reader.get("a") == make_record("a")  # WAL: no reopening needed
