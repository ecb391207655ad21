"""Cross-check of the one-run ε lower bound (Steinke, Nasr & Jagielski 2023) against Google DeepMind's
independent implementation in the `jax-privacy` package (PyPI, `jax_privacy/auditing.py`:
`_one_run_p_value`, `_epsilon_one_run`). That module needs only numpy, scipy and dp-accounting, so it is
loaded by path without JAX:

    uv pip install --no-deps --target /tmp/jaxp jax-privacy==2.0.0
    python benchmarks/cross_check_one_run_bound.py /tmp/jaxp/jax_privacy/auditing.py

Prints the largest absolute difference of the p-values and of the ε bounds over a grid of (m, r, v, δ).
"""

from __future__ import annotations

import importlib.util
import itertools
import sys

from fl_privacy.evaluation.dp_audit import epsilon_lower_bound, max_showable_epsilon, p_value


def main(path: str) -> None:
    spec = importlib.util.spec_from_file_location("jax_privacy_auditing", path)
    assert spec is not None and spec.loader is not None
    theirs = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = theirs  # its dataclasses look their module up
    spec.loader.exec_module(theirs)
    worst_p, worst_eps, rows = 0.0, 0.0, 0
    for m, delta in itertools.product((200, 1000, 5000), (0.0, 1e-5)):
        for r in (20, 100, 200):
            for v in sorted({r // 2, int(0.7 * r), int(0.9 * r), r}):
                for eps in (0.0, 0.5, 2.0):
                    worst_p = max(worst_p, abs(p_value(m, r, v, eps, delta)
                                               - float(theirs._one_run_p_value(m, r, v, eps, delta))))
                ours = epsilon_lower_bound(m, r, v, delta, 0.05 / 3)
                reference = float(theirs._epsilon_one_run(0.0, m, r, v, 0.05 / 3, delta))
                worst_eps = max(worst_eps, abs(ours - reference))
                rows += 1
    print(f"{rows} (m, r, v, δ) cases: max |Δp| = {worst_p:.2e}, max |Δε| = {worst_eps:.2e}")
    for m in (200, 1000, 5000):
        k = m // 4
        reference = float(theirs._epsilon_one_run(0.0, m, 2 * k, 2 * k, 0.05 / 3, 1e-5))
        ours = max_showable_epsilon(m, [k], 1e-5, 1 - 0.05 / 3)
        print(f"m = {m}, all 2k = {2 * k} guesses right, significance 0.05/3, δ = 1e-5: ours {ours:.4f}, "
              f"jax-privacy {reference:.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
