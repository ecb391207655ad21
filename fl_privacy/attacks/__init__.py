"""Privacy attacks, each written against exactly what its attacker sees (never the ground truth)."""

from fl_privacy.attacks.gradient_inversion import (
    DLGConfig,
    DummyInit,
    InvertingConfig,
    Reconstruction,
    cosine_distance,
    dlg,
    invert_fedavg,
    inverting_gradients,
    squared_distance,
)
from fl_privacy.attacks.label_restoration import (
    idlg_label,
    label_counts,
    label_set,
    last_linear_names,
    restore_labels,
)
from fl_privacy.attacks.priors import total_variation
from fl_privacy.attacks.views import CapturedUpdate

__all__ = [
    "CapturedUpdate",
    "DLGConfig",
    "DummyInit",
    "InvertingConfig",
    "Reconstruction",
    "cosine_distance",
    "dlg",
    "idlg_label",
    "invert_fedavg",
    "inverting_gradients",
    "label_counts",
    "label_set",
    "last_linear_names",
    "restore_labels",
    "squared_distance",
    "total_variation",
]
