"""The one owner of a run directory's layout: every file and folder name a run (or a command over a finished
run) writes, once. Writers and readers both take their paths from here, so adding an output is one line
here plus its writer, and every reader finds it. A leaf: it imports nothing from the package.

Names are paths relative to the run directory (`run_dir / SUMMARY`); the report globs them over a sweep
(`root.rglob(str(ATTACK_SCORES))`).
"""

from __future__ import annotations

from pathlib import Path

# --- what every run writes -------------------------------------------------------------------------------
SUMMARY = Path("summary.json")  # config, versions, status, final metrics, privacy, wall time
METRICS = Path("metrics.jsonl")  # a line per round
FINAL_MODEL = Path("final_model.pt")
RUN_LOG = Path("run.log")
HYDRA_DIR = Path(".hydra")  # Hydra's own record of the composed config
ACCURACY_FIGURE = Path("accuracy.png")
# What Hydra writes into a run directory before the job starts (never an earlier run's result).
HYDRA_FILES = (HYDRA_DIR, RUN_LOG)

# --- checkpoints and the lab's side channels ------------------------------------------------------------
CHECKPOINT = Path("checkpoint")
CHECKPOINT_SERVER = CHECKPOINT / "server.pt"
CHECKPOINT_NODES = CHECKPOINT / "nodes"
LAB_ARTIFACTS = Path("lab")  # what clients hand the lab (e.g. the GAN adversary's generator)
NODE_STATES = LAB_ARTIFACTS / "nodes"  # each node's latest persistent state, copied into checkpoints

# --- the curious server's view and the truth behind it ---------------------------------------------------
CAPTURES = Path("captures")  # what the server saw: round_XXX/partition_YY.pt
TRUTH = Path("truth")  # which examples a captured update used: round_XXX/partition_YY.json (scoring only)

# --- a user's own Flower app, recorded by `fl_privacy.capture` and audited by `fl-privacy audit-captures` ---
# (the capture folder is its own root: captures/round_XXX/node_ID.pt, partitions/node_ID.json, the report)
NODE_PARTITIONS = Path("partitions")  # each node's node_config, written by its client mod (scoring only)
RISK_REPORT = Path("risk_report.json")
RISK_REPORT_PAGE = Path("risk_report.html")
RISK_GRIDS = Path("risk_report_grids")  # one truth | reconstruction grid per attacked capture
RISK_MEMBERSHIP_SCORES = Path("risk_report_membership.json")  # candidates' scores per capture

# --- gradient inversion (`attack.gradient_inversion`) ----------------------------------------------------
ATTACK_DIR = Path("attack")
RECONSTRUCTIONS = ATTACK_DIR / "reconstructions"
ATTACK_SCORES = ATTACK_DIR / "scores.json"
ATTACK_GRID = ATTACK_DIR / "grid.png"
ATTACK_GRIDS = ATTACK_DIR / "grids"  # one truth | reconstruction grid per capture

# --- membership audits -----------------------------------------------------------------------------------
MIA_DIR = Path("mia")
MIA_SCORES = MIA_DIR / "scores.json"
MIA_ATTACK_SCORES = MIA_DIR / "attack_scores.json"  # the attacker's raw scores, before evaluation
MIA_ROC = MIA_DIR / "roc.png"
MIA_UPDATES = MIA_DIR / "updates.json"  # the server's per-round attack on updates
MIA_UPDATES_FIGURE = MIA_DIR / "updates_auc.png"

# --- DP audit ----------------------------------------------------------------------------------------------
DP_AUDIT_DIR = Path("dp_audit")
DP_AUDIT_SCORES = DP_AUDIT_DIR / "scores.json"
DP_AUDIT_ATTACK_SCORES = DP_AUDIT_DIR / "attack_scores.json"
DIRAC_SCORES_ARTIFACT = "dirac_canary_scores"  # lab_artifact name: the white-box observer's running scores
# the federated one-shot audit (canary clients, Andrew et al. 2024)
INITIAL_MODEL = Path("initial_model.pt")  # the global model the first federated round sends (after warm-up)
DP_AUDIT_FL_DIR = Path("dp_audit_fl")
DP_AUDIT_FL_SCORES = DP_AUDIT_FL_DIR / "scores.json"
DP_AUDIT_FL_COSINES = DP_AUDIT_FL_DIR / "cosines.json"

# --- the GAN attack ----------------------------------------------------------------------------------------
GAN_DIR = Path("gan")
GAN_GENERATORS = GAN_DIR / "generators"  # the insider's generator per round: round_XXX.pt
GAN_PROGRESSION = GAN_DIR / "progression.png"
GAN_EVALUATION = GAN_DIR / "evaluation.json"  # written by `fl-privacy gan-eval` after the run

# --- representation inversion and PAR-GAN ----------------------------------------------------------------
REPRESENTATION_DIR = Path("representation_inversion")
REPRESENTATION_TABLE = REPRESENTATION_DIR / "table.json"
REPRESENTATION_TABLE_CSV = REPRESENTATION_DIR / "table.csv"
REPRESENTATION_GRID = REPRESENTATION_DIR / "grid.png"
REPRESENTATION_SUMMARY = REPRESENTATION_DIR / "summary.json"
PAR_GAN_TABLE = Path("par_gan_table.json")
PAR_GAN_TABLE_CSV = Path("par_gan_table.csv")
PAR_GAN_QUALITY_CURVES = Path("par_gan_quality_curves.json")  # k -> leak and Fréchet per checkpoint

# --- experiment tracking (`tracking=...`, fl_privacy/lab/channels/tracking.py) ---------------------------
TRACKING_TENSORBOARD = Path("tensorboard")  # TensorBoard's event files
TRACKING_MLFLOW_DB = Path("mlflow.db")  # MLflow's SQLite store
TRACKING_MLFLOW_ARTIFACTS = Path("mlflow_artifacts")  # MLflow's artifacts (its copies of the image grids)
TRACKING_DIRS = (str(TRACKING_TENSORBOARD), str(TRACKING_MLFLOW_ARTIFACTS))

# --- the report over finished runs: a folder of its own beside (or inside) the runs ------------------------
REPORT_DIR = Path("report")
REPORT_PAGE = Path("report.html")
REPORT_JOBS = Path("jobs.csv")
REPORT_SEEDS = Path("seeds.csv")
REPORT_ACCURACY = Path("accuracy_rounds.png")
REPORT_ATTACK_ROUNDS = Path("attack_rounds.png")
REPORT_FRONTIER = Path("frontier.png")
REPORT_SWEEP = Path("sweep.png")
REPORT_SEED_BANDS = Path("seed_bands.png")
# What marks a folder as a run (or a sweep of runs).
HYDRA_OVERRIDES = HYDRA_DIR / "overrides.yaml"
SWEEP_FILE = Path("multirun.yaml")

# Images the report shows per job, as globs under a run directory.
JOB_IMAGE_PATTERNS = (str(GAN_PROGRESSION), str(ATTACK_DIR / "*.png"))


def round_file(run_dir: Path, folder: Path, server_round: int, partition_id: int, suffix: str) -> Path:
    """`run_dir/folder/round_XXX/partition_YY.suffix`: per-round, per-client attack files."""
    return Path(run_dir) / folder / f"round_{server_round:03d}" / f"partition_{partition_id:02d}{suffix}"


def round_files(run_dir: Path, folder: Path, suffix: str, partition_id: int | None = None) -> list[Path]:
    """The per-round, per-client files under `run_dir/folder`, sorted by round then partition (all
    partitions, or one)."""
    partition = "*" if partition_id is None else f"{partition_id:02d}"
    return sorted((Path(run_dir) / folder).glob(f"round_*/partition_{partition}{suffix}"))


def generator_file(run_dir: Path, server_round: int) -> Path:
    """The GAN adversary's generator after `server_round`."""
    return Path(run_dir) / GAN_GENERATORS / f"round_{server_round:03d}.pt"


def gan_samples_file(run_dir: Path, server_round: int) -> Path:
    return Path(run_dir) / GAN_DIR / f"samples_round_{server_round:03d}.png"


def node_state_file(partition_id: int) -> str:
    """A node's saved state's file name (under NODE_STATES and CHECKPOINT_NODES)."""
    return f"partition_{partition_id:02d}.pt"


def lab_artifact(run_dir: Path, name: str) -> Path:
    """An artifact a client hands the lab through its side channel."""
    return Path(run_dir) / LAB_ARTIFACTS / f"{name}.pt"


def par_gan_samples_file(run_dir: Path, discriminators: int) -> Path:
    """PAR-GAN's sample grid for k discriminators."""
    return Path(run_dir) / f"samples_k{discriminators}.png"


def node_capture_file(root: Path, server_round: int, node_id: int) -> Path:
    """`root/captures/round_XXX/node_ID.pt`: what the server saw of one node's reply in one round."""
    return Path(root) / CAPTURES / f"round_{server_round:03d}" / f"node_{node_id}.pt"


def node_capture_files(root: Path) -> list[Path]:
    """Every node capture under `root/captures`, sorted by round (then file name)."""
    return sorted((Path(root) / CAPTURES).glob("round_*/node_*.pt"))


def node_partition_file(root: Path, node_id: int) -> Path:
    """`root/partitions/node_ID.json`: a node's node_config (its partition id), recorded by its client mod."""
    return Path(root) / NODE_PARTITIONS / f"node_{node_id}.json"


def risk_grid_file(root: Path, server_round: int, node_id: int) -> Path:
    """The truth | reconstruction grid of one attacked capture."""
    return Path(root) / RISK_GRIDS / f"round_{server_round:03d}_node_{node_id}.png"
