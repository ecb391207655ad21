"""Re-run the federated one-shot audit (`lab.pipelines.fl_audit_pipeline.run_fl_audit`) on every finished
run under a folder that kept `initial_model.pt` and `final_model.pt`: the cosines and the estimates are
recomputed from the saved models with the current code (no training).

    python benchmarks/rescore_fl_audits.py outputs/dp_audit_fl
"""

from __future__ import annotations

import sys
from pathlib import Path

from fl_privacy.cli.commands import run_settings
from fl_privacy.lab.pipelines.fl_audit_pipeline import run_fl_audit
from fl_privacy.run_layout import INITIAL_MODEL

if __name__ == "__main__":
    for initial in sorted(Path(sys.argv[1]).rglob(str(INITIAL_MODEL))):
        run = initial.parent
        result = run_fl_audit(run, run_settings(run, "attack", []))
        print(run, f"accounted {result['accounted_epsilon']:.2f}",
              f"estimate {result['empirical_epsilon']:.2f}",
              f"equal variance {result['empirical_epsilon_equal_variance']:.2f}",
              f"control {result['fresh_control'].get('empirical_epsilon', float('nan')):.2f}")
