"""The daemon's single-instance lease: now one use of the store's leases (syncd/store/lease.py)."""

from syncd.store.lease import DEFAULT_NAME, Holder, Lease, LeaseHeld, LeaseLost

__all__ = ["DEFAULT_NAME", "Holder", "Lease", "LeaseHeld", "LeaseLost"]
