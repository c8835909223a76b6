"""No calls home: OpenVINO's usage telemetry is switched off in this project's own processes.

OpenVINO's Python package imports `openvino_telemetry` (Google Analytics, sent when a consent
file says yes or none exists yet, and looked up on import) and NNCF does the same. A device in a
lab must not call out, whatever that file says, so before OpenVINO loads the package is blocked
for this process: `import openvino_telemetry` then fails, and OpenVINO's converter and NNCF fall
back to their own no-op stubs (`openvino.tools.ovc.telemetry_stub`, `NNCFTelemetryStub`).
Nothing is written to the user's consent file (`opt_in_out --opt_out` does that machine-wide).
"""

from __future__ import annotations

import importlib
import sys

_BLOCKED = ("openvino_telemetry", "openvino_telemetry.backend", "openvino_telemetry.main")
_OVC_USERS = (
    "openvino.tools.ovc.telemetry_utils",
    "openvino.tools.ovc.convert_impl",
    "openvino.tools.ovc.main",
    "openvino.tools.ovc.utils",
)


def disable_openvino_telemetry() -> None:
    """Block OpenVINO/NNCF telemetry in this process; safe to call any number of times."""
    if sys.modules.get("openvino_telemetry") is None:
        for name in _BLOCKED:
            sys.modules[name] = None  # type: ignore[assignment]  # import now raises ImportError
        return
    # OpenVINO was imported before us and holds the real package: swap in its no-op stub.
    stub = importlib.import_module("openvino.tools.ovc.telemetry_stub")
    for name in _OVC_USERS:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "tm"):
            module.tm = stub
    wrapper = sys.modules.get("nncf.telemetry.wrapper")
    if wrapper is not None and hasattr(wrapper, "NNCFTelemetryStub"):
        wrapper.telemetry = wrapper.NNCFTelemetryStub()
