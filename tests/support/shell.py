"""What a POSIX shell makes of a command line pasted into it."""

from __future__ import annotations

import subprocess

# Each program the browse page names is replaced by a function that prints its argv.
_ECHO_ARGV = "".join(
    f"{name}() {{ printf '%s\\0' {name} \"$@\"; }}; " for name in ("curl", "wget", "aria2c")
)


def shell_words(command: str) -> list[str]:
    """The argv ``sh`` runs ``curl``, ``wget`` or ``aria2c`` with for ``command``."""
    result = subprocess.run(
        ["sh", "-c", _ECHO_ARGV + command], capture_output=True, check=True, timeout=10
    )
    return result.stdout.decode().split("\0")[:-1]
