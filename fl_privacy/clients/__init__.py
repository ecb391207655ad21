"""Client roles: what a node does with the global model it receives each round."""

from fl_privacy.clients.roles import ROLES, ClientJob, role_of

__all__ = ["ROLES", "ClientJob", "role_of"]
