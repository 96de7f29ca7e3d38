"""Random identifiers from a pool of the OS's randomness (``cds_service/ids.py``)."""

from __future__ import annotations

import os
import re

from cds_service.ids import new_hex_id, new_uuid

V4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_uuids_are_version_4_and_never_repeat() -> None:
    made = [new_uuid() for _ in range(20_000)]  # several pools' worth
    assert all(V4.fullmatch(u) for u in made)
    assert len(set(made)) == len(made)
    assert re.fullmatch(r"[0-9a-f]{32}", new_hex_id())


def test_a_forked_worker_never_hands_out_its_parents_identifiers() -> None:
    """gunicorn forks its workers: a pool copied into the child would give both processes the
    same next identifiers (two workers' cards with one uuid, and feedback to the wrong one)."""
    new_uuid()  # the parent's pool holds bytes not yet handed out
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.close(read)
        os.write(write, " ".join(new_uuid() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = set(pipe.read().split())
    os.waitpid(child, 0)
    ours = {new_uuid() for _ in range(5)}
    assert len(theirs) == 5 and not theirs & ours
