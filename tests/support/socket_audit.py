"""Runs a Python module as `python -m` would, with an audit hook that records every socket it makes:
`python tests/support/socket_audit.py LOG MODULE [ARGS...]`.

LOG gets one JSON line per event, written as it happens (the process may be killed): `{"new": id, "family": n,
"type": n, "accepted": bool, "stack": [...]}` for each socket made (CPython raises `socket.__new__` for every one,
socketpair's and accept's included; `stack` is where it was made, innermost first), `{"bind": id, "address": ...}`
and `{"connect": id, "address": ...}`. `sockets(LOG)` reads them back.
"""

from __future__ import annotations

import json
import os
import runpy
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()


STACK_FRAMES = 12


@dataclass
class Socket:
    family: int
    type: int
    accepted: bool  # made by accept() for a connection to a listening socket
    stack: list[str]
    binds: list[Any] = field(default_factory=list)
    connects: list[Any] = field(default_factory=list)

    @property
    def unix(self) -> bool:
        return self.family == socket.AF_UNIX


def command(log: Path, module: str, *args: str) -> list[str]:
    """The command line that runs `python -m module args` under the audit, recording into `log`."""
    return [sys.executable, str(SCRIPT), str(log), module, *args]


def sockets(log: Path) -> list[Socket]:
    """The sockets a run recorded, in order, with their binds and connects."""
    made: dict[int, Socket] = {}
    order: list[Socket] = []
    for line in log.read_text().splitlines() if log.exists() else []:
        event = json.loads(line)
        if "new" in event:  # (an id can come again once its socket is gone)
            made[event["new"]] = s = Socket(event["family"], event["type"], event["accepted"], event["stack"])
            order.append(s)
        elif event.get("bind") in made:
            made[event["bind"]].binds.append(event["address"])
        elif event.get("connect") in made:
            made[event["connect"]].connects.append(event["address"])
    return order


def _address(value: object) -> Any:
    if isinstance(value, tuple):
        return [_address(v) for v in value]
    return value if isinstance(value, (str, int, float)) or value is None else repr(value)


def _stack() -> list[str]:
    """Where the socket being made is made: file:function:line, innermost first, from socket.__init__'s caller."""
    frames, f = [], sys._getframe(3)  # (past this function, the hook and socket.socket.__init__)
    while f is not None and len(frames) < STACK_FRAMES:
        code, line, f = f.f_code, f.f_lineno, f.f_back
        if not code.co_filename.startswith("<frozen"):  # (importlib's frames say nothing here)
            path = Path(code.co_filename)
            frames.append(f"{path.parent.name}/{path.name}:{code.co_name}:{line}")
    return frames


def _audit(out: Any) -> None:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.__new__":
            stack = _stack()
            accepted = bool(stack) and stack[0].startswith(f"{Path(socket.__file__).parent.name}/socket.py:accept:")
            record = {"new": id(args[0]), "family": int(args[1]), "type": int(args[2])}
            record |= {"accepted": accepted, "stack": stack}
        elif event in ("socket.bind", "socket.connect"):
            record = {event.split(".")[1]: id(args[0]), "address": _address(args[1])}
        else:
            return
        out.write(json.dumps(record) + "\n")
        out.flush()

    sys.addaudithook(hook)


def main() -> None:
    log, module, *args = sys.argv[1:]
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115 (open for the life of the process)
    _audit(out)
    sys.argv = [module, *args]
    sys.path[0] = os.getcwd()  # as `python -m` has it (not this file's folder)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
