"""`--weights imagenet|none|PATH`: where pretrained weights come from, without ever hanging.

ImageNet weights of keras.applications models live in Keras's own cache
(`$KERAS_HOME/models`, default `~/.keras/models`). We look for the expected file there first;
if it is missing we check, with a short timeout, that the download host is reachable before
letting Keras download it. Offline, the user gets one line at once saying which file to put where.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from wbc_edge.core.errors import WbcError

DOWNLOAD_HOST = "storage.googleapis.com"
PROBE_TIMEOUT_S = 3.0
OFFLINE_ENV = "WBC_OFFLINE"  # set to 1 to never try a download


class WeightsUnavailable(WbcError):
    """Pretrained weights were asked for but cannot be had (offline, or none exist)."""


@dataclass(frozen=True)
class WeightsChoice:
    """What `--weights` asked for: kind is "imagenet", "none" or "file" (then `path`)."""

    kind: str
    path: Path | None = None

    @property
    def pretrained(self) -> bool:
        return self.kind != "none"

    def describe(self) -> str:
        return str(self.path) if self.kind == "file" else self.kind


def parse_weights(text: str | None) -> WeightsChoice:
    """'imagenet', 'none' (or empty) or a path to a local weights file (which must exist)."""
    if text in (None, "", "none", "None"):
        return WeightsChoice("none")
    if text == "imagenet":
        return WeightsChoice("imagenet")
    path = Path(text).expanduser()
    if not path.is_file():
        raise WeightsUnavailable("no such weights file (use imagenet, none or a file)", path)
    return WeightsChoice("file", path)


def keras_cache_dir() -> Path:
    """Where keras.utils.get_file keeps downloaded model weights."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def ensure_keras_weights(model: str, file_name: str, url: str) -> None:
    """Return if Keras can get `file_name` (cached, or host reachable); else fail in one line."""
    cached = keras_cache_dir() / file_name
    if cached.is_file():
        return
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0") or not host_reachable(DOWNLOAD_HOST):
        raise WeightsUnavailable(
            f"{model}: ImageNet weights are not in the Keras cache and {DOWNLOAD_HOST} cannot "
            f"be reached; download {url} and put it at {cached} (or use --weights PATH|none)"
        )


def host_reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True if a TCP connection opens within `timeout` s (DNS included, which has no timeout of
    its own, so the probe runs in a daemon thread)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
