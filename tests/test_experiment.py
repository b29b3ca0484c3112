"""The size experiment and the temperature exploration, on tiny real data (not the full runs)."""
import csv
import json
import math

import numpy as np
import pytest

from imps.model.dataset import Dataset


@pytest.fixture(scope="module")
def tiny_dataset(lightpad_12k, tmp_path_factory):
    """The first 400 rows of each 12K LightPad performance: real data, seconds to train on."""
    ds = Dataset.from_performances([p[:400] for p in lightpad_12k.performances()], dict(lightpad_12k.info))
    path = ds.save(tmp_path_factory.mktemp("tinyset") / "tiny.npz")
    return ds, path


@pytest.fixture(scope="module")
def experiment(tiny_dataset, tmp_path_factory):
    from imps_train.experiment import run_experiment
    from imps_train.train import TrainConfig
    ds, _ = tiny_dataset
    out = tmp_path_factory.mktemp("experiment")
    config = TrainConfig(epochs=1, patience=1, windows_per_epoch=32, val_windows=16, seq_len=10, batch_size=16)
    summary = run_experiment(ds, [4, "8"], out, config, label="tiny", progress=False)
    return out, summary, config


def test_experiment_writes_one_summary_row_and_curve_per_size(experiment):
    out, summary, _ = experiment
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["units"]) for r in rows] == [4, 8]
    assert all(int(r["epochs_run"]) == 1 and math.isfinite(float(r["best_val_loss"])) for r in rows)
    stored = json.loads((out / "summary.json").read_text())
    assert stored == summary
    assert [s["units"] for s in stored["sizes"]] == [4, 8]
    assert sorted(stored["histories"]) == ["4", "8"]
    assert all(len(h["loss"]) == len(h["val_loss"]) == 1 for h in stored["histories"].values())
    assert stored["config"]["windows_per_epoch"] == 32 and "size" not in stored["config"]
    import matplotlib.image
    image = matplotlib.image.imread(out / "loss-by-size.png")
    assert image.shape[0] > 300 and image.shape[1] > 500


def test_every_size_gets_the_same_split_and_settings(experiment):
    from imps_train.train import load_run
    out, _, _ = experiment
    a, b = load_run(out / "4u"), load_run(out / "8u")
    assert (a["config"]["units"], b["config"]["units"]) == (4, 8)
    same = {k: v for k, v in a["config"].items() if k not in ("size", "units")}
    assert same == {k: v for k, v in b["config"].items() if k not in ("size", "units")}
    assert (a["train_rows"], a["val_rows"], a["val_windows"]) == (b["train_rows"], b["val_rows"], b["val_windows"])
    assert (out / "4u" / "best.weights.h5").exists() and (out / "8u" / "best.weights.h5").exists()


def test_resume_keeps_finished_runs_and_retrains_changed_ones(experiment, tiny_dataset):
    from dataclasses import replace

    from imps_train.experiment import run_experiment
    out, _, config = experiment
    before = (out / "4u" / "run.json").stat().st_mtime_ns
    summary = run_experiment(tiny_dataset[0], [4], out, config, label="tiny", progress=False, resume=True)
    assert (out / "4u" / "run.json").stat().st_mtime_ns == before
    assert [s["units"] for s in summary["sizes"]] == [4]
    assert summary["sizes"][0]["best_val_loss"] == pytest.approx(
        json.loads((out / "4u" / "run.json").read_text())["best_val_loss"])
    from imps_train.experiment import _reusable
    assert _reusable(out / "4u", replace(config, size="4", seed=1)) is None


def test_size_lists_are_checked():
    from imps_train.experiment import ExperimentError, parse_sizes
    assert parse_sizes("s, 128,64,xl") == [64, 128, 512]
    with pytest.raises(ExperimentError, match="unknown size 'huge'"):
        parse_sizes("64,huge")
    with pytest.raises(ExperimentError, match="no sizes"):
        parse_sizes(" , ")


def test_experiment_command_reports_bad_sizes_clearly(tiny_dataset, tmp_path, capsys):
    from imps_train.cli import main
    assert main(["experiment", str(tiny_dataset[1]), "-o", str(tmp_path / "x"), "--sizes", "64,lots"]) == 2
    assert "unknown size 'lots'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    assert "--windows-per-epoch" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["temperatures", "--help"])
    assert "--primings-per-performance" in capsys.readouterr().out
    from imps_train.cli import build_parser
    args = build_parser().parse_args(["train", "data.npz", "-o", "run"])
    assert args.size == "m"      # the advice of docs/results.md, made the default
    args = build_parser().parse_args(["export", "run", "-o", "m.tflite"])
    assert (args.pi_temperature, args.sigma_temperature) == (1.0, 2.0)   # the grid's choice, results.md


def test_wasserstein_distance_of_known_samples():
    from imps_train.temperatures import wasserstein_1d
    rng = np.random.default_rng(0)
    a = rng.random(5000)
    assert wasserstein_1d(a, a) == 0.0
    assert wasserstein_1d(a, a + 0.3) == pytest.approx(0.3)
    assert wasserstein_1d(np.zeros(10), np.ones(7)) == pytest.approx(1.0)


def test_tempered_nll_matches_the_gaussian_formula():
    from imps_train.temperatures import tempered_nll
    d, k = 2, 2
    mus = np.array([[0.0, 0.0], [5.0, 5.0]])
    sigmas = np.array([[1.0, 2.0], [1.0, 1.0]])
    logits = np.array([0.0, -50.0])       # all the weight on component 0
    params = np.concatenate([mus.ravel(), sigmas.ravel(), logits])[None]
    y = np.array([[1.0, 2.0]])

    def expected(t_sigma):
        sd = sigmas[0] * math.sqrt(t_sigma)
        return float(np.sum(0.5 * (y[0] / sd) ** 2 + np.log(sd) + 0.5 * math.log(2 * math.pi)))
    assert tempered_nll(params, y, d, k, 1.0, 1.0) == pytest.approx(expected(1.0), abs=1e-9)
    assert tempered_nll(params, y, d, k, 1.0, 0.25) == pytest.approx(expected(0.25), abs=1e-9)
    # A high pi temperature moves weight onto the far component: the near target gets less likely
    # by -log of the near component's new weight, softmax([0, -0.5])[0].
    near_weight = 1 / (1 + math.exp(-0.5))
    assert tempered_nll(params, y, d, k, 100.0, 1.0) == pytest.approx(expected(1.0) - math.log(near_weight), abs=1e-3)


@pytest.fixture(scope="module")
def temperature_grid(tiny_model, lightpad_12k, tmp_path_factory):
    from imps_train.temperatures import explore
    out = tmp_path_factory.mktemp("temperatures")
    # Half the 12K set held out (2 performances), so choosing and scoring each get one.
    summary = explore(tiny_model, lightpad_12k, out, pis=(0.5, 2.0), sigmas=(0.001, 0.5), steps=150,
                      val_fraction=0.5, seeds=(0, 1), per_performance=2, nll_rows=300, progress=False,
                      choose_by="w1_mean")
    return out, summary


def test_temperature_grid_writes_figure_and_one_row_per_cell(temperature_grid):
    out, summary = temperature_grid
    with open(out / "temperatures.csv") as f:
        rows = list(csv.DictReader(f))
    cells = {(float(r["pi_temperature"]), float(r["sigma_temperature"])) for r in rows}
    assert len(rows) == 4 and cells == {(0.5, 0.001), (2.0, 0.001), (0.5, 0.5), (2.0, 0.5)}
    for r in rows:
        assert all(math.isfinite(float(r[name])) for name in (
            "w1_dt", "w1_values", "w1_step", "w1_mean", "heldout_nll", "structure", "axis_generated",
            "w1_mean_sd_seeds", "w1_mean_sd_primings", "w1_mean_choosing"))
        assert 0 <= float(r["structure"]) <= 1
    import matplotlib.image
    image = matplotlib.image.imread(out / "temperature-grid.png")
    assert image.shape[0] > 400 and image.shape[1] > 600


def test_the_grid_chooses_on_one_set_of_performances_and_scores_on_another(temperature_grid):
    out, summary = temperature_grid
    set_a = {p["performance"] for p in summary["choosing"]["primings"]}
    set_b = {p["performance"] for p in summary["scoring"]["primings"]}
    assert set_a and set_b and not set_a & set_b
    assert len(summary["choosing"]["primings"]) == len(summary["scoring"]["primings"]) == 2
    cells = summary["cells"]

    def cell(entry):
        return [c for c in cells if (c["pi_temperature"], c["sigma_temperature"]) ==
                (entry["pi_temperature"], entry["sigma_temperature"])][0]
    a_to_b, b_to_a = summary["folds"]
    # Fold A->B picks the best cell on set A and reports what that cell scores on set B, and back.
    assert cell(a_to_b)["choosing_set"]["w1_mean"] == min(c["choosing_set"]["w1_mean"] for c in cells)
    assert a_to_b["on_other_set"]["w1_mean"] == cell(a_to_b)["w1_mean"] != a_to_b["on_own_set"]["w1_mean"]
    assert cell(b_to_a)["w1_mean"] == min(c["w1_mean"] for c in cells)
    assert b_to_a["on_other_set"]["w1_mean"] == cell(b_to_a)["choosing_set"]["w1_mean"]
    ranks_b = sorted(c["w1_mean"] for c in cells)
    assert ranks_b[a_to_b["rank_on_other_set"] - 1] == a_to_b["on_other_set"]["w1_mean"]
    # What ships is the same rule on both sets together.
    best = summary["best"]
    assert best["pooled"]["w1_mean"] == min(c["pooled"]["w1_mean"] for c in cells)
    assert best["pooled"]["w1_mean"] == pytest.approx(0.5 * (best["w1_mean"] + best["choosing_set"]["w1_mean"]))
    assert summary["seeds"] == [0, 1] and math.isfinite(best["w1_mean_sd_seeds"])
    # And from the per-cell CSV a person would read, not from the summary that holds the choice.
    with open(out / "temperatures.csv") as f:
        rows = list(csv.DictReader(f))
    pooled = {(float(r["pi_temperature"]), float(r["sigma_temperature"])):
              0.5 * (float(r["w1_mean"]) + float(r["w1_mean_choosing"])) for r in rows}
    assert min(pooled, key=pooled.get) == (best["pi_temperature"], best["sigma_temperature"])


def test_sigma_temperature_changes_what_is_generated_and_its_score(temperature_grid):
    _, summary = temperature_grid
    by = {(c["pi_temperature"], c["sigma_temperature"]): c for c in summary["cells"]}
    low, high = by[(0.5, 0.001)], by[(0.5, 0.5)]
    assert low["w1_mean"] != pytest.approx(high["w1_mean"], rel=1e-3)
    # Wider Gaussians make bigger moves and make the real next gesture less surprising.
    assert high["mean_step"] > low["mean_step"]
    assert high["heldout_nll"] < low["heldout_nll"]


def test_temperatures_command_and_its_errors(tiny_model, tiny_dataset, tmp_path, capsys):
    from imps_train.cli import main
    out = tmp_path / "t"
    assert main(["temperatures", str(tiny_model), str(tiny_dataset[1]), "-o", str(out), "--pi", "1",
                 "--sigma", "0.01,0.1", "--steps", "40", "--nll-rows", "50", "--prime-rows", "20", "-q",
                 "--val-fraction", "0.5", "--seeds", "3"]) == 0
    printed = capsys.readouterr().out
    assert "fold A->B: chose pi 1" in printed and "chosen on both sets: pi 1" in printed
    assert len((out / "temperatures.csv").read_text().splitlines()) == 1 + 2
    assert main(["temperatures", str(tiny_model), str(tiny_dataset[1]), "-o", str(out), "--sigma", "0,x"]) == 2
    assert "--sigma: expected comma-separated numbers" in capsys.readouterr().err
    assert main(["temperatures", str(tiny_model), str(tiny_dataset[1]), "-o", str(out), "--sigma", "-1"]) == 2
    assert "positive temperatures" in capsys.readouterr().err
    assert main(["temperatures", str(tiny_model), str(tiny_dataset[1]), "-o", str(out),
                 "--prime-rows", "100000"]) == 2
    assert "no held-out performance longer than 100000 rows" in capsys.readouterr().err
    assert main(["temperatures", str(tiny_model), str(tiny_dataset[1]), "-o", str(out), "--steps", "40",
                 "--prime-rows", "20"]) == 2
    assert "need at least 2 held-out performances" in capsys.readouterr().err    # one held out: no honest split
    assert main(["temperatures", str(tiny_model), str(tiny_dataset[1]), "-o", str(out), "--seeds", "1,1"]) == 2
    assert "distinct seeds" in capsys.readouterr().err


def test_time_budget_stops_after_the_epoch_that_passes_it_and_says_so(tiny_dataset, tmp_path):
    from imps_train.train import TrainConfig, train
    config = TrainConfig(size="4", epochs=5, patience=5, windows_per_epoch=32, val_windows=16, seq_len=10,
                         batch_size=16, max_minutes=1e-6)
    result = train(tiny_dataset[0], tmp_path / "run", config, progress=False)
    assert result["epochs_run"] == 1 and result["stopped_by_time_budget"] == 1
    assert (tmp_path / "run" / "best.weights.h5").exists()
    with pytest.raises(ValueError, match="max_minutes must be positive"):
        train(tiny_dataset[0], tmp_path / "bad", TrainConfig(max_minutes=0), progress=False)


def test_split_seed_fixes_the_held_out_performances_whatever_the_seed(tiny_dataset, tmp_path):
    from imps_train.train import TrainConfig, train
    from imps_train.windows import split
    ds = tiny_dataset[0]
    base = dict(size="4", epochs=1, windows_per_epoch=32, val_windows=16, seq_len=10, batch_size=16, val_fraction=0.5)
    assert not np.array_equal(split(ds, 0.5, 0)[1].rows, split(ds, 0.5, 2)[1].rows)   # seeds do pick others
    a = train(ds, tmp_path / "a", TrainConfig(seed=0, **base), progress=False)
    b = train(ds, tmp_path / "b", TrainConfig(seed=2, split_seed=0, **base), progress=False)
    assert (a["val_rows"], a["train_rows"]) == (b["val_rows"], b["train_rows"])
    assert a["history"]["loss"] != b["history"]["loss"]            # another initialisation all the same


def test_seeds_pool_to_mean_and_spread_per_size(experiment, tmp_path, capsys):
    import copy

    from imps_train.cli import main
    from imps_train.experiment import ExperimentError
    from imps_train.seeds import combine, load_summaries
    _, summary, _ = experiment
    out = tmp_path / "seed0.json"            # the fixture's summary (another test rewrites the directory's)
    out.write_text(json.dumps(summary))
    other = copy.deepcopy(summary)
    other["config"]["seed"] = 1
    for row in other["sizes"]:
        row["best_val_loss"] += 1.0
    (tmp_path / "seed1.json").write_text(json.dumps(other))
    rows = combine(load_summaries([out, tmp_path / "seed1.json"]))
    assert [r["units"] for r in rows] == [4, 8] and all(r["seeds"] == 2 for r in rows)
    for r, row in zip(rows, summary["sizes"]):
        assert r["best_val_mean"] == pytest.approx(row["best_val_loss"] + 0.5)
        assert r["best_val_sd"] == pytest.approx(math.sqrt(0.5))       # two values 1 apart
        assert r["best_val_max"] - r["best_val_min"] == pytest.approx(1.0)
    # The climb after the best epoch: the highest validation loss from the best epoch on.
    for r, row in zip(rows, summary["sizes"]):
        val = summary["histories"][str(row["units"])]["val_loss"]
        assert r["per_seed_peak_after_best"]["0"] == pytest.approx(max(val[row["best_epoch"] - 1:]))
        assert r["climb_after_best_mean"] >= 0
    assert main(["seeds", str(out), str(tmp_path / "seed1.json"), "-o", str(tmp_path / "pooled")]) == 0
    assert "2 seeds" in capsys.readouterr().out
    assert (tmp_path / "pooled" / "seeds.png").stat().st_size > 10_000
    other["config"]["windows_per_epoch"] = 999
    (tmp_path / "different.json").write_text(json.dumps(other))
    with pytest.raises(ExperimentError, match="differ in more than the seed"):
        load_summaries([out, tmp_path / "different.json"])
