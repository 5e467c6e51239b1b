"""What a server is allowed to do: where it binds, who may call it, how much one request may take."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from workbench.errors import UserError

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


@dataclass(frozen=True)
class ServeConfig:
    """Binding, auth and the limits every request runs under."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    max_upload_bytes: int = 8 << 20
    request_timeout_s: float = 30.0
    max_concurrency: int = 8
    queue_timeout_s: float = 10.0
    model_spec: str | None = None

    def __post_init__(self) -> None:
        if self.token is not None and not self.token.strip():
            raise UserError("--token is empty")
        if not is_loopback(self.host) and not self.token:
            raise UserError(
                f"refusing to serve on {self.host} without a token: give --token T (or WORKBENCH_TOKEN), "
                "or bind to 127.0.0.1"
            )
        for name in ("max_upload_bytes", "max_concurrency", "port"):
            if getattr(self, name) < (0 if name == "port" else 1):
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or address) only listens on this machine. 0.0.0.0 and :: are not."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False
