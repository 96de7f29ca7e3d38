"""The HTTP layer: the only package that imports Flask."""

from cds_service.api.handlers import register_error_handlers
from cds_service.api.views import bp

__all__ = ["bp", "register_error_handlers"]
