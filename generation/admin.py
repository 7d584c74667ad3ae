"""The admin is split by package; importing them registers their ModelAdmins."""

from generation.jobs import admin as jobs_admin
from generation.registry import admin as registry_admin
from generation.routing import admin as routing_admin
from generation.routing import canary_admin

__all__ = ["canary_admin", "jobs_admin", "registry_admin", "routing_admin"]
