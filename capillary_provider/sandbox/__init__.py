"""Local emulator of Capillary's coupon upload endpoints, for demos, integration tests and local DAG work.

Run it with ``python -m capillary_provider.sandbox`` (see that module for options, control endpoints
and fault rules) or from Python with :func:`running_sandbox`. Production code never imports this.
"""

from capillary_provider.sandbox.app import create_app
from capillary_provider.sandbox.config import SandboxConfig
from capillary_provider.sandbox.testing import SandboxClient, running_sandbox

__all__ = ["SandboxClient", "SandboxConfig", "create_app", "running_sandbox"]
