"""The child process of one sync remote tool call (``workers/tools/process.py``): reads the
call as one JSON line on stdin, writes its result as JSON on stdout, and kills its process
group once stdin closes (its tools worker died)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

from orchestrator.config.settings import load_settings
from orchestrator.tools import calling
from workers.module_scan import served_modules
from workers.tools.calls import render
from workers.tools.registry import ToolRegistry


def _watch_lifeline(fd: int) -> None:
    """At EOF on ``fd`` (the tools worker closed the pipe, or died), kill the process group.
    The raw fd, not ``sys.stdin``: a daemon thread blocked in a buffered reader would hold its
    lock when the interpreter shuts down."""
    while os.read(fd, 65536):
        pass
    if os.getpgrp() == os.getpid():  # it leads its group (started in a session of its own)
        os.killpg(os.getpgrp(), signal.SIGKILL)
    # Started otherwise, its group is its parent's, which it must not kill: itself only.
    os.kill(os.getpid(), signal.SIGKILL)


def _run(request: dict[str, Any], tool_modules: list[str]) -> dict[str, str]:
    name = request["name"]
    tool = ToolRegistry.from_modules(tool_modules).get(name)
    try:
        if tool is None:
            raise LookupError(f"tool {name!r} is not served by this worker")
        with calling(request["key"]):
            value = tool.function(**tool.validate(request["arguments"]))
        return {"status": "ok", "text": render(value)}
    except Exception as failure:  # the tools worker reports it as the tool's error
        return {"status": "error", "text": f"{type(failure).__name__}: {failure}"}


def main() -> None:
    """The child's entry point: it reads its settings (the tools worker's environment, which
    it inherits) once, here."""
    settings = load_settings()
    tool_modules = served_modules(settings, settings.tool_module_names)
    request = json.loads(_read_line(0))
    threading.Thread(target=_watch_lifeline, args=(0,), daemon=True).start()
    # The result goes to the original stdout; what the tool prints goes to stderr (the
    # worker's log), so that it cannot corrupt the result.
    result = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    result.write(json.dumps(_run(request, tool_modules)).encode())
    result.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no interpreter shutdown beside the lifeline thread, still reading


def _read_line(fd: int) -> bytes:
    """One line from ``fd``, read a byte at a time: nothing after it is taken from the pipe."""
    line = bytearray()
    while (byte := os.read(fd, 1)) and byte != b"\n":
        line += byte
    return bytes(line)


if __name__ == "__main__":
    main()
