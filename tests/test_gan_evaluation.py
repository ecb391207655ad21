"""The post-run GAN evaluation over kept generators, and the report's aggregation over seeds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from fl_privacy.models import DCGANGenerator
from fl_privacy.report.jobs import Job
from fl_privacy.report.seeds import mean_ci, plot_seed_bands, seed_groups, seed_rows
from fl_privacy.results import COMPLETED, save_torch, write_json


def _job(name: str, overrides: dict, value: float, shares: list[float]) -> Job:
    records = [{"round": r, "central": {}, "gan_attack": {"victim_share": s}}
               for r, s in enumerate(shares, 1)]
    return Job(name, Path(name), COMPLETED, overrides, {"accuracy": value}, records)


def test_seed_aggregation_groups_jobs_that_differ_only_in_seed(tmp_path):
    runs = [(0, "a", 0.5), (1, "a", 0.7), (2, "a", 0.6), (0, "b", 0.1)]
    jobs = [_job(str(i), {"seed": str(seed), "experiment": arm}, value, [value, value + 0.1])
            for i, (seed, arm, value) in enumerate(runs)]
    assert {label: len(group) for label, group in seed_groups(jobs).items()} == {"experiment=a": 3,
                                                                                  "experiment=b": 1}
    rows = {row["group"]: row for row in seed_rows(jobs) if row["metric"] == "accuracy"}
    mean, low, high = mean_ci([0.5, 0.7, 0.6], (0.0, 1.0))
    assert rows["experiment=a"]["n"] == 3 and rows["experiment=a"]["mean"] == pytest.approx(0.6)
    assert 0.5 <= low < 0.6 < high <= 0.7  # accuracy is bounded: bootstrap within the seeds' range
    assert (rows["experiment=a"]["ci_low"], rows["experiment=a"]["ci_high"]) == (low, high)
    assert rows["experiment=a"]["values"] == "0.5;0.7;0.6" and rows["experiment=a"]["method"] == "bootstrap"
    assert math.isnan(mean_ci([0.5, 0.7, 0.6])[1])  # unbounded with 3 seeds: no t interval
    assert rows["experiment=b"]["n"] == 1 and math.isnan(rows["experiment=b"]["ci_low"])
    assert plot_seed_bands(jobs, ["gan_attack.victim_share"], tmp_path / "bands.png")
    assert (tmp_path / "bands.png").stat().st_size > 0
    assert not plot_seed_bands(jobs[3:], ["gan_attack.victim_share"], tmp_path / "none.png")


@pytest.mark.usefixtures("one_torch_thread")
def test_gan_eval_scores_every_kept_generator_against_members_and_nonmembers(cfg_factory, tmp_path):
    from fl_privacy.cli.commands import run_settings
    from fl_privacy.lab.pipelines.gan_evaluation import evaluate_generators

    cfg = cfg_factory("+experiment=gan_attribution", "evaluation.oracle.epochs=1",
                      "evaluation.oracle.components=4", "evaluation.oracle.samples_per_round=40",
                      f"evaluation.oracle.cache_dir={tmp_path / 'oracle'}")
    write_json(tmp_path / "summary.json", {"config": OmegaConf.to_container(cfg, resolve=True)})
    for server_round in (9, 10):
        torch.manual_seed(server_round)
        save_torch(tmp_path / "gan" / "generators" / f"round_{server_round:03d}.pt",
                   {"latent_dim": 100, "generator": DCGANGenerator(100, (1, 28, 28)).state_dict()})
    # with the positive control on: a quarter of every round's samples are near-copies of member records
    result = evaluate_generators(tmp_path, run_settings(tmp_path, "evaluation.oracle",
                                                        ["evaluation.oracle.planted_fraction=0.25"]))
    assert [r["round"] for r in result["rounds"]] == [9, 10] and result["final"]["round"] == 10
    baseline = result["baseline"]
    assert baseline["members"] > 100 and abs(baseline["members"] - baseline["nonmembers"]) <= 1
    assert list(baseline["judges"]) == ["oracle_cnn", "lenet"]
    for judge in baseline["judges"].values():
        # real vs real is far closer than the other classes are to the victim's, in standardised features
        assert judge["frechet_floor_members_vs_nonmembers"] < judge["frechet_other_vs_victim"]
        assert judge["kid_floor_members_vs_nonmembers"]["kid"] < judge["kid_other_vs_victim"]["kid"]
        assert 0 < judge["ceiling_n"] <= 2 * baseline["members"] + 1
    for judged in result["final"]["judges"].values():  # share beside ceiling, both in [0, 1]; no ratio
        assert set(judged) >= {"share", "ceiling", "frechet_over_floor", "kid", "kid_se"}
        assert 0 <= judged["share"] <= 1 and 0 < judged["ceiling"] <= 1
    assert not any("relative" in key for key in result["final"])
    assert 0 <= result["final"]["judge_agreement"]["agree"] <= 1
    for space in ("records_features", "records_pixels"):
        test = result["final"][space]
        assert 0 < test["p_value"] <= 1 and 0 <= test["nearest_is_member"] <= 1
    assert result["final"]["planted"] == 10  # and the run-level test over both rounds catches them
    assert result["records_run"]["rounds"] == 2 and result["records_run"]["p_value"] < 0.01
    assert (tmp_path / "gan" / "evaluation.json").exists()
