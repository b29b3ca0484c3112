"""Runs that survive their end: per-epoch history on disk, and --resume from the last epoch
(killed with -9, capped by epochs or by wall time), on tiny models and real data."""
import csv
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from imps.model.dataset import Dataset

TINY = dict(size="4", windows_per_epoch=64, val_windows=16, seq_len=10, batch_size=16)


@pytest.fixture(scope="module")
def tiny_dataset(lightpad_12k, tmp_path_factory):
    """The first 400 rows of each 12K LightPad performance: real data, seconds to train on."""
    ds = Dataset.from_performances([p[:400] for p in lightpad_12k.performances()], dict(lightpad_12k.info))
    path = ds.save(tmp_path_factory.mktemp("tinyset") / "tiny.npz")
    return ds, path


def history_rows(run_dir) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def assert_continuous(rows, epochs):
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))   # none lost, none doubled
    assert all(math.isfinite(float(r["loss"])) and math.isfinite(float(r["val_loss"])) for r in rows)


def test_killed_run_keeps_its_curve_and_resumes_to_the_same_length(tiny_dataset, tmp_path):
    from imps_train.cli import main
    from imps_train.train import load_run
    run = tmp_path / "run"
    args = ["train", str(tiny_dataset[1]), "-o", str(run), "--size", "4", "--windows-per-epoch", "256",
            "--val-windows", "16", "--seq-len", "10", "--batch-size", "16", "--patience", "500", "-q"]
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from imps_train.cli import main; sys.exit(main())",
                             *args, "--epochs", "500"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (run / "history.csv").exists() and len(history_rows(run)) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed = history_rows(run)
    k = len(killed)
    assert k >= 2 and not (run / "run.json").exists()      # the curve survived; the run never finished
    assert_continuous(killed, k)

    assert main([*args, "--epochs", str(k + 2), "--resume"]) == 0
    resumed = history_rows(run)
    assert_continuous(resumed, k + 2)
    # the epochs saved before the kill are kept as they were (the last may be redone if the kill fell
    # between its history row and its checkpoint)
    assert [r["loss"] for r in resumed[:k - 1]] == [r["loss"] for r in killed[:k - 1]]
    result = load_run(run)
    assert result["epochs_run"] == k + 2 and result["finished"] == "epoch cap"
    assert result["history"]["val_loss"] == pytest.approx([float(r["val_loss"]) for r in resumed])
    assert sorted(p.name for p in run.glob("last-*.weights.h5")) == [f"last-{k + 2}.weights.h5"]


def test_run_capped_by_epochs_or_time_continues_as_if_never_stopped(tiny_dataset, tmp_path):
    """Weights, Adam's moments and the shuffles carry over: the resumed curve follows the straight one."""
    from imps_train.train import TrainConfig, train
    ds = tiny_dataset[0]
    straight = train(ds, tmp_path / "straight", TrainConfig(epochs=5, patience=50, **TINY), progress=False)
    first = train(ds, tmp_path / "capped", TrainConfig(epochs=5, patience=50, max_minutes=1e-6, **TINY),
                  progress=False)
    assert first["epochs_run"] == 1 and first["stopped_by_time_budget"] == 1 and first["finished"] is None
    train(ds, tmp_path / "capped", TrainConfig(epochs=3, patience=50, **TINY), progress=False, resume=True)
    resumed = train(ds, tmp_path / "capped", TrainConfig(epochs=5, patience=50, **TINY), progress=False,
                    resume=True)
    assert_continuous(history_rows(tmp_path / "capped"), 5)
    assert resumed["epochs_run"] == straight["epochs_run"] == 5
    # A restart from fresh weights would begin again near epoch 1's loss; a resumed run carries on.
    assert resumed["history"]["loss"] == pytest.approx(straight["history"]["loss"], rel=0.02, abs=0.02)
    assert resumed["history"]["val_loss"] == pytest.approx(straight["history"]["val_loss"], rel=0.02, abs=0.02)


def test_patience_counter_carries_over_and_finished_runs_are_skipped(tiny_dataset, tmp_path, capsys):
    """With a zero learning rate validation never improves after epoch 1: patience 3 stops at epoch 4,
    whether the run is stopped after 2 epochs and resumed or not (a reset counter would give 5)."""
    from imps_train.train import TrainConfig, train
    ds = tiny_dataset[0]
    config = dict(patience=3, learning_rate=0.0, **TINY)
    train(ds, tmp_path / "run", TrainConfig(epochs=2, **config), progress=False)
    result = train(ds, tmp_path / "run", TrainConfig(epochs=20, **config), progress=False, resume=True)
    assert result["epochs_run"] == 4 and result["finished"] == "early stopping" and result["best_epoch"] == 1
    assert_continuous(history_rows(tmp_path / "run"), 4)
    before = (tmp_path / "run" / "run.json").stat().st_mtime_ns
    capsys.readouterr()
    again = train(ds, tmp_path / "run", TrainConfig(epochs=50, **config), progress=False, resume=True)
    assert "finished (early stopping, 4 epochs); not trained again" in capsys.readouterr().out
    assert again["epochs_run"] == 4 and (tmp_path / "run" / "run.json").stat().st_mtime_ns == before


def test_resume_refuses_other_settings_or_data_in_one_line(tiny_dataset, tmp_path, capsys):
    from imps_train.cli import main
    from imps_train.train import ResumeError, TrainConfig, train
    ds, path = tiny_dataset
    run = tmp_path / "run"
    train(ds, run, TrainConfig(epochs=1, **TINY), progress=False)
    before = (run / "history.csv").read_text()
    for change, word in [(dict(size="8"), "units"), (dict(seed=1), "seed"), (dict(layers=1), "layers"),
                         (dict(seq_len=12), "seq_len")]:
        with pytest.raises(ResumeError, match=f"differs in {word} "):
            train(ds, run, TrainConfig(epochs=3, **(TINY | change)), progress=False, resume=True)
    other = Dataset.from_performances([p[:300] for p in ds.performances()], dict(ds.info))
    with pytest.raises(ResumeError, match="differs in dataset"):
        train(other, run, TrainConfig(epochs=3, **TINY), progress=False, resume=True)
    nine_d = Dataset.from_performances([p[:, [0, 1, 2, 3, 0, 1, 2, 3, 0]] for p in ds.performances()])
    with pytest.raises(ResumeError, match="differs in dimension 4 \\(asked 9\\)"):
        train(nine_d, run, TrainConfig(epochs=3, **TINY), progress=False, resume=True)
    args = ["train", str(path), "-o", str(run), "--windows-per-epoch", "64", "--val-windows", "16",
            "--seq-len", "10", "--batch-size", "16", "--epochs", "3", "--resume", "-q"]
    assert main([*args, "--size", "8"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "units 4 (asked 8)" in err and err.count("\n") == 1
    assert (run / "history.csv").read_text() == before           # refused runs lose nothing
    assert main(["experiment", str(path), "-o", str(tmp_path), "--sizes", "4", "--seed", "2", "--epochs", "3",
                 "--windows-per-epoch", "64", "--val-windows", "16", "--seq-len", "10", "--batch-size", "16",
                 "--resume", "-q"]) == 0                          # 4u/ is another directory: a fresh run
    assert main(["experiment", str(path), "-o", str(tmp_path), "--sizes", "4", "--seed", "3", "--epochs", "3",
                 "--windows-per-epoch", "64", "--val-windows", "16", "--seq-len", "10", "--batch-size", "16",
                 "--resume", "-q"]) == 2
    assert "differs in seed 2 (asked 3)" in capsys.readouterr().err
