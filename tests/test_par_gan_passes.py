"""PAR-GAN trained for equal passes per record (`defense.par_gan.passes`), the partition-size rule, the
`par_gan_leaky` preset and the PAR-GAN table over seeds (`fl-privacy par-gan-table`)."""

import json

import pytest

from fl_privacy.cli.commands import main
from fl_privacy.config import compose_settings
from fl_privacy.errors import ConfigError
from fl_privacy.lab.pipelines.par_gan_experiment import settings_for, steps_for
from fl_privacy.report.par_gan_matched import matched_quality_table
from fl_privacy.report.par_gan_table import par_gan_table
from fl_privacy.results import RunFileError


def _par_gan(*overrides: str):
    return compose_settings(["+experiment=par_gan_regime", *overrides]).defense.par_gan


def test_without_passes_every_k_takes_the_same_steps():
    par_gan = _par_gan("defense.par_gan.steps=7")
    assert [steps_for(par_gan, k) for k in (1, 2, 5)] == [7, 7, 7]


def test_passes_give_every_record_the_same_views_whatever_k():
    par_gan = _par_gan("defense.par_gan.members=640", "defense.par_gan.passes=10")
    for k in (1, 2, 5):
        steps = steps_for(par_gan, k)
        views_per_record = steps * par_gan.discriminator_steps * par_gan.batch_size / (640 // k)
        assert views_per_record == pytest.approx(10), k
        assert settings_for(par_gan, k).steps == steps
    assert steps_for(par_gan, 1) == 5 * steps_for(par_gan, 5) == 50  # k = 5: a fifth of the steps


def test_passes_with_a_batch_split_over_the_discriminators():
    par_gan = _par_gan("defense.par_gan.batch_per_discriminator=false", "defense.par_gan.batch_size=60",
                       "defense.par_gan.members=600", "defense.par_gan.passes=4",
                       "defense.par_gan.discriminators=[1,5]")
    # 12 of 120 records per discriminator step at k = 5, 60 of 600 at k = 1: the same steps
    assert steps_for(par_gan, 1) == steps_for(par_gan, 5) == 20


def test_partitions_smaller_than_a_batch_are_refused_naming_the_key():
    with pytest.raises(ConfigError) as error:
        _par_gan("defense.par_gan.members=300")  # 60 records per discriminator at k = 5 < 64
    assert error.value.key == "defense.par_gan.batch_size"
    _par_gan("defense.par_gan.members=320")  # 64 each: one batch fits


def test_the_leaky_preset_keeps_the_authors_regime():
    par_gan = compose_settings(["+experiment=par_gan_leaky"]).defense.par_gan
    assert (par_gan.batch_size, par_gan.batch_per_discriminator, par_gan.discriminator_steps,
            par_gan.discriminator_dropout) == (64, True, 2, 0.3)
    assert par_gan.members // max(par_gan.discriminators) >= 100
    assert [steps_for(par_gan, k) for k in (1, 2, 5)] == [625, 312, 125]
    with pytest.raises(ConfigError) as error:
        compose_settings(["+experiment=par_gan_leaky", "defense.par_gan.passes=0"])
    assert error.value.key == "defense.par_gan.passes"


def _job(root, number: int, seed: int, aucs: dict[int, float], monte_carlo: bool = True) -> None:
    job = root / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- +experiment=par_gan_leaky\n- seed={seed}\n")
    summary = {"status": "completed", "config": {"defense": {"par_gan": {"members": 500}}}}
    (job / "summary.json").write_text(json.dumps(summary))
    keys = ("steps", "epochs_per_record", "white_box_max_auc", "white_box_mean_auc", "black_box_pixel_auc",
            "black_box_feature_auc", "monte_carlo_auc", "oracle_confidence", "not_data_share",
            "class_balance", "frechet_distance", "train_seconds")
    rows = [{"discriminators": k, **{key: auc for key in keys if monte_carlo or key != "monte_carlo_auc"}}
            for k, auc in aucs.items()]
    (job / "par_gan_table.json").write_text(json.dumps(rows))


def test_table_has_a_row_per_seed_and_k_and_the_mean_with_a_t_interval(tmp_path, capsys):
    _job(tmp_path / "a", 0, 0, {1: 0.6, 5: 0.5})
    _job(tmp_path / "b", 0, 1, {1: 0.7, 5: 0.5})  # seeds in two folders, as two single-seed sweeps
    table = par_gan_table(tmp_path / "a", tmp_path / "b").splitlines()
    assert len(table) == 2 + 4 + 2  # header, 2 seeds x 2 k, a mean row per k
    assert table[2].startswith("| 0 | 1 | 500 | 1 | 1 | 0.600 | 0.600 |")
    assert table[3].startswith("| 0 | 5 | 100 |")
    # AUCs are bounded: the bootstrap interval of the two seeds' mean stays inside their range (a t interval
    # over 2 seeds, 0.650 ± 0.635, would leave [0, 1])
    assert "| 0.650 [0.600, 0.700] |" in table[6] and "n = 2" in table[6] and table[6].count("0.650") >= 5
    assert "| 0.500 |" in table[7]
    assert main(["par-gan-table", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out.strip() == "\n".join(table)


def test_a_column_the_runs_did_not_measure_shows_a_dash(tmp_path):
    _job(tmp_path, 0, 0, {1: 0.6}, monte_carlo=False)  # monte_carlo_samples=0: no Monte-Carlo AUC
    row, mean = par_gan_table(tmp_path).splitlines()[2:]
    columns = par_gan_table(tmp_path).splitlines()[0].split(" | ")
    where = columns.index("generator-only Monte-Carlo AUC")
    assert row.split(" | ")[where] == "-" and mean.split(" | ")[where] == "-"
    assert row.split(" | ")[where - 1] == "0.600"  # the measured neighbour is still there


def _curves(root, seed: int, curves: dict[int, list[tuple[int, float, float]]]) -> None:
    """A finished job whose par_gan_quality_curves.json holds (step, Fréchet, Monte-Carlo AUC) per k."""
    _job(root, 0, seed, {k: points[-1][2] for k, points in curves.items()})
    (root / "0" / "par_gan_quality_curves.json").write_text(json.dumps(
        {str(k): [{"step": s, "frechet_distance": f, "monte_carlo_auc": a} for s, f, a in points]
         for k, points in curves.items()}))


def test_matched_quality_compares_each_k_at_the_checkpoint_nearest_the_worse_final_quality(tmp_path):
    # k = 1 ends better (Fréchet 500) and leaks more; at Fréchet ~800 (k = 5's final) it leaked no more
    # than k = 5: the final-step difference is all quality, the matched difference is 0
    _curves(tmp_path / "a", 0, {1: [(100, 900, 0.51), (200, 790, 0.52), (300, 500, 0.56)],
                                5: [(100, 1500, 0.50), (300, 800, 0.52)]})
    _curves(tmp_path / "b", 1, {1: [(100, 1000, 0.50), (200, 700, 0.53), (300, 450, 0.60)],
                                5: [(100, 1400, 0.51), (300, 720, 0.53)]})
    lines = matched_quality_table(tmp_path / "a", tmp_path / "b").splitlines()
    assert lines[2] == "| 0 | 800 | 1 | 200 | 790 | 0.520 |"  # matched: k = 1's step 200, not its final
    assert lines[3] == "| 0 | 800 | 5 | 300 | 800 | 0.520 |"
    assert lines[4] == "| 1 | 720 | 1 | 200 | 700 | 0.530 |"
    matched, final = "| +0.000, +0.000 | +0.000", "| -0.040, -0.070 | -0.055 [-0.070, -0.040] |"
    assert lines[-1] == f"| monte_carlo_auc {matched} {final}"
    _job(tmp_path / "c", 0, 2, {1: 0.6, 5: 0.5})  # a run without checkpoints has no curves
    with pytest.raises(RunFileError, match="quality_checkpoints"):
        matched_quality_table(tmp_path / "c")
