"""The run log says which job each run was and which process ran it; a killed run ends
when the next run of its lease starts, so runs of one job never overlap in the log."""

from __future__ import annotations

import os
import socket

from syncd.store import Store


def test_runs_record_job_and_holder_and_a_killed_run_is_closed_by_the_next(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        killed = store.start_run("sync", job="pull:invoices", holder="w1@host:1")
        push = store.start_run("push", job="push")
        taken_over = store.start_run("sync", job="pull:invoices", holder="w2@host:2")
        runs = {r.id: r for r in store.recent_runs(10)}
        assert runs[killed].status == "interrupted"
        assert runs[killed].ended_at is not None
        assert runs[killed].ended_at <= runs[taken_over].started_at
        assert (runs[taken_over].job, runs[taken_over].holder, runs[taken_over].status) == (
            "pull:invoices",
            "w2@host:2",
            "running",
        )
        # Another lease's run is left alone; the default holder is this process.
        assert runs[push].status == "running"
        assert runs[push].holder == f"{socket.gethostname()}:{os.getpid()}"
        assert runs[push].job == "push"
    finally:
        store.close()
