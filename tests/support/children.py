"""Child processes the suite starts (Synapse, the js clients) die with the test process."""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

_prctl: Any
try:  # Linux: let the kernel kill the child if the process that started it dies.
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """For `preexec_fn`: SIGKILL this child when its parent dies; exit at once if it has."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent is already gone
        os._exit(1)
