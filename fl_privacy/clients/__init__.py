"""Client roles: what a node does with the global model it receives each round."""

from fl_privacy.clients.dp import dp_client
from fl_privacy.clients.gan_adversary import gan_adversary
from fl_privacy.clients.roles import ClientJob, Role, honest, role_of

ROLES: dict[str, Role] = {"honest": honest, "gan_adversary": gan_adversary, "dp": dp_client}
FAKE_CLASS_ROLES = frozenset({"gan_adversary"})
# Roles that apply the client-side update defenses (defense.pruning); an adversary would not.
DEFENDED_ROLES = frozenset({"honest", "dp"})


def model_outputs(cfg, num_classes: int) -> int:
    """The data set's classes, plus the artificial "fake" class when any node runs the GAN attack
    (as in Hitaj et al., every participant's model then has the extra output)."""
    roles = {cfg.client.role, *(cfg.client.roles or {}).values()}
    return num_classes + int(bool(roles & FAKE_CLASS_ROLES))

__all__ = ["DEFENDED_ROLES", "FAKE_CLASS_ROLES", "ROLES", "ClientJob", "Role", "model_outputs", "role_of"]
