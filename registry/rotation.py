"""Key rotation: a new signing key, published, switched to, and every record re-signed.

Each step is recorded in the key state before the next starts, so a rotation interrupted at
any point (a crash, Ctrl-C) resumes where it stopped when run again:

1. create key n+1 (``rotation.to``);
2. publish its certificate next to the current one (signatures by either verify);
3. switch new writes to it (every process notices on its next write), retiring the old key;
4. re-sign all records in key order, saving the last key done after every batch;
5. forget the rotation; retired keys stay published until their signatures have expired.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tqdm import tqdm

from registry.audit import OPERATOR, Caller
from registry.keyring import Keyring
from registry.service import Registry


@dataclass
class RotationReport:
    new_key: int
    resigned: int
    resumed: bool


async def rotate(
    registry: Registry,
    keyring: Keyring,
    publish: Callable[[], Awaitable[None]],
    *,
    batch: int = 500,
    progress: bool = False,
    validity: int,
    caller: Caller = OPERATOR,
) -> RotationReport:
    """Rotate (or resume rotating) the signing key; the audit log records the switch, each
    batch re-signed and each publication, naming ``caller``."""
    state = keyring.load_state()
    resumed = state.rotation is not None
    n = keyring.add_signing_key()
    await publish()  # 2: the new certificate is out before anything is signed with it
    with keyring.locked():
        state = keyring.load_state()
        assert state.rotation is not None
        switching = not state.rotation.get("switched")
        old = state.current
        if switching:
            now = int(time.time())
            state.retired.append({"n": state.current, "retired_at": now})
            # Keys retired longer ago than a signature lives sign nothing that still counts.
            state.retired = [r for r in state.retired if r["retired_at"] + validity > now]
            state.current = n
            state.rotation["switched"] = True
            keyring.save_state(state)
        after = state.rotation.get("after")
    if switching:
        detail = f"signing key {n} replaces key {old}"
        await registry.audit_event(registry.context(caller), "key.rotate", keyring.handle, detail)
    total = await registry.store.count()
    bar = tqdm(
        total=total,
        unit="rec",
        file=sys.stderr,
        disable=not progress,
        desc=f"re-signing with key {n}",
        dynamic_ncols=True,
    )
    resigned = 0
    try:
        while True:
            rows = await registry.store.scan(after, batch)
            if not rows:
                break
            keys = [key for key, _ in rows]
            resigned += await registry.resign(keys, caller)
            after = keys[-1]
            with keyring.locked():
                state = keyring.load_state()
                assert state.rotation is not None
                state.rotation["after"] = after
                keyring.save_state(state)
            bar.update(len(rows))
    finally:
        bar.close()
    with keyring.locked():
        state = keyring.load_state()
        state.rotation = None
        keyring.save_state(state)
    await publish()  # unpublish keys pruned above
    return RotationReport(n, resigned, resumed)
