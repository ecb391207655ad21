"""Re-run the DP audit's evaluation step on the guesses stored in every `dp_audit/scores.json` under a
folder, adding the fields later versions write (`max_showable_epsilon`, `violation`, `can_fail`,
`violation_pvalue`) to runs audited before them. Nothing is re-attacked: the counts of correct guesses
per k in `per_k` are what the evaluation used.

    python benchmarks/rescore_dp_audits.py outputs/dp_audit
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from fl_privacy.evaluation.dp_audit import audit_verdict, max_showable_epsilon, violation_pvalue
from fl_privacy.results import read_json, write_json
from fl_privacy.run_layout import DP_AUDIT_SCORES


def rescore(path: Path) -> dict:
    scores = read_json(path)
    claimed = math.inf if scores["accounted_epsilon"] is None else float(scores["accounted_epsilon"])
    m, delta, confidence = scores["num_canaries"], scores["delta"], scores["confidence"]
    guesses = [row["k"] for row in scores["per_k"]]
    showable = max_showable_epsilon(m, guesses, delta, confidence)
    scores |= {"max_showable_epsilon": showable,
               **audit_verdict(scores["epsilon_lower_bound"], claimed, showable,
                               violation_pvalue(scores["per_k"], m, claimed, delta))}
    write_json(path, scores)
    return scores


if __name__ == "__main__":
    for found in sorted(Path(sys.argv[1]).rglob(str(DP_AUDIT_SCORES))):
        result = rescore(found)
        print(found, f"bound {result['epsilon_lower_bound']:.3f}", f"violation {result['violation']}",
              f"p {result['violation_pvalue']:.3g}")
