"""`syncd daemon`: scheduled pulls and push-back, signals, reload, lease, /healthz and /metrics."""

from syncd.daemon.service import (
    EXIT_CONFIG,
    EXIT_LEASE_LOST,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_STORE,
    Daemon,
    DaemonExit,
    run_daemon,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_LEASE_LOST",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_STORE",
    "Daemon",
    "DaemonExit",
    "run_daemon",
]
