"""Build what the ``Dockerfile`` builds, without a Docker engine.

The Dockerfile is read instruction by instruction: ``FROM python:X.Y`` becomes a fresh venv of
this Python X.Y at ``/usr/local`` of a staging directory, ``WORKDIR``, ``ARG`` and ``ENV`` are
kept, ``COPY`` copies from the build context what ``.dockerignore`` lets through, and ``RUN``
runs its shell command there with that venv first on ``PATH``. So a file the Dockerfile does not
copy, or a package its ``RUN`` does not install, is missing here as it is in the image. An
instruction this module does not mirror is an error, not skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# What the python image sets for every process (its PATH puts /usr/local/bin first).
BASE_ENV = {"LANG": "C.UTF-8"}
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Instructions that change nothing a process of the image sees.
_NO_OPS = frozenset({"EXPOSE", "LABEL"})


@dataclass
class Image:
    """A staged image: ``root`` stands for ``/`` of the image."""

    root: Path
    workdir_inside: PurePosixPath = field(default_factory=lambda: PurePosixPath("/"))
    env: dict[str, str] = field(default_factory=dict)

    @property
    def workdir(self) -> Path:
        """The staged ``WORKDIR``: where ``RUN`` and the image's processes start."""
        return self.path(str(self.workdir_inside))

    @property
    def bin(self) -> Path:
        """The staged ``/usr/local/bin``: the image's ``python``, ``pip``, ``celery``."""
        return self.root / "usr" / "local" / "bin"

    def path(self, inside: str) -> Path:
        """Where ``inside`` (an absolute path of the image) is in the staging directory."""
        return self.root / PurePosixPath(inside).relative_to("/")

    def process_env(self) -> dict[str, str]:
        """The environment a process of the image starts with (before compose adds to it)."""
        home = self.path("/root")
        home.mkdir(exist_ok=True)
        path = f"{self.bin}:{SYSTEM_PATH}"
        return {**BASE_ENV, "HOME": str(home), "PATH": path, **self.env}


def instructions(dockerfile: str) -> Iterator[tuple[str, str]]:
    """``(KEYWORD, arguments)`` for each instruction, continuation lines joined."""
    pending = ""
    for line in dockerfile.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments and blank lines, also between continuation lines
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        yield keyword.upper(), arguments.strip()


class DockerIgnore:
    """``.dockerignore`` as Docker reads it: patterns anchored at the context root, ``*`` and
    ``?`` within one path segment, ``**`` across segments, ``!`` for exceptions, the last
    matching line wins, and a pattern matching a directory matches everything below it."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in text.splitlines():
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            exception = pattern.startswith("!")
            pattern = os.path.normpath(pattern.removeprefix("!").strip()).lstrip("/")
            self.rules.append((exception, re.compile(_regex(pattern))))

    @property
    def has_exceptions(self) -> bool:
        return any(exception for exception, _ in self.rules)

    def excludes(self, relative: str) -> bool:
        """True when ``relative`` (a path in the context, ``/``-separated) is left out."""
        parts = relative.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for exception, rule in self.rules:
            if any(rule.fullmatch(candidate) for candidate in candidates):
                excluded = not exception
        return excluded


def _regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
            continue
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f".dockerignore: unclosed '[' in {pattern!r}")
            out += pattern[i : end + 1]
            i = end
        else:
            out += re.escape(char)
        i += 1
    return out


def context_files(
    context: Path, ignore: DockerIgnore, extra: Mapping[str, str]
) -> dict[str, Path | str]:
    """The files of the build context that ``COPY`` can see: relative path -> the file, or its
    text for ``extra`` files (files a user would have added to the checkout)."""
    found: dict[str, Path | str] = {}
    for directory, dirs, files in os.walk(context):
        base = Path(directory).relative_to(context).as_posix()
        prefix = "" if base == "." else f"{base}/"
        if not ignore.has_exceptions:  # nothing below an excluded directory can come back
            dirs[:] = [name for name in dirs if not ignore.excludes(prefix + name)]
        for name in files:
            if not ignore.excludes(prefix + name):
                found[prefix + name] = Path(directory, name)
    for relative, text in extra.items():
        if not ignore.excludes(relative):
            found[relative] = text
    return found


def _copy(files: dict[str, Path | str], sources: list[str], dest: Path, into: bool) -> None:
    """``COPY sources dest``; ``into``: ``dest`` names a directory (it ends with ``/``)."""
    into_directory = into or len(sources) > 1
    for source in sources:
        if any(char in source for char in "*?["):
            raise NotImplementedError(f"COPY with a wildcard ({source!r}): teach {__name__}")
        source = os.path.normpath(source).lstrip("/")
        if source == ".":
            chosen = {relative: relative for relative in files}
        elif source in files:
            target = source.rsplit("/", 1)[-1] if into_directory or dest.is_dir() else ""
            chosen = {source: target}
        else:
            chosen = {
                relative: relative.removeprefix(f"{source}/")
                for relative in files
                if relative.startswith(f"{source}/")
            }
        if not chosen:
            raise FileNotFoundError(f"COPY {source}: not in the build context")
        for relative, target in chosen.items():
            path = dest / target if target else dest
            path.parent.mkdir(parents=True, exist_ok=True)
            content = files[relative]
            if isinstance(content, Path):
                shutil.copyfile(content, path)
            else:
                path.write_text(content)


def build(
    context: Path,
    root: Path,
    build_args: Mapping[str, str],
    extra: Mapping[str, str],
    log: Path | None = None,
) -> Image:
    """Stage ``context``'s Dockerfile into ``root`` (the image's ``/``), running its ``RUN``
    commands; ``extra`` are files added to the context, ``log`` gets their output."""
    dockerignore = context / ".dockerignore"
    ignore = DockerIgnore(dockerignore.read_text() if dockerignore.exists() else "")
    files = context_files(context, ignore, extra)
    image = Image(root=root)
    args: dict[str, str] = {}
    for keyword, arguments in instructions((context / "Dockerfile").read_text()):
        if keyword == "FROM":
            _from(image, arguments)
        elif keyword == "WORKDIR":
            image.workdir_inside = image.workdir_inside / arguments  # absolute replaces
            image.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "ARG":
            name, has_default, default = arguments.partition("=")
            value = build_args.get(name, _unquote(default) if has_default else "")
            args[name] = value
        elif keyword == "ENV":
            image.env.update(_env_pairs(arguments))
        elif keyword == "COPY":
            if arguments.startswith(("[", "--")):  # exec form, --from, --chown...
                raise NotImplementedError(f"COPY {arguments}: teach {__name__}")
            *sources, dest = shlex.split(arguments)
            target = image.path(dest) if dest.startswith("/") else image.workdir / dest
            _copy(files, sources, target, dest.endswith("/"))
        elif keyword == "RUN":
            _run(image, arguments, args, log)
        elif keyword not in _NO_OPS:
            raise NotImplementedError(f"{keyword} {arguments}: teach {__name__}")
    return image


def _from(image: Image, arguments: str) -> None:
    found = re.fullmatch(r"python:(\d+)\.(\d+)[\w.-]*", arguments)
    if found is None:
        raise NotImplementedError(f"FROM {arguments}: only python:X.Y images are staged")
    wanted = (int(found[1]), int(found[2]))
    if sys.version_info[:2] != wanted:
        raise RuntimeError(f"FROM {arguments}: run the tests with Python {wanted[0]}.{wanted[1]}")
    venv = image.path("/usr/local")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)


def _run(image: Image, command: str, args: Mapping[str, str], log: Path | None) -> None:
    # As in a build: the image's environment over the build arguments (ENV wins over ARG),
    # and this machine's way to package indexes, as a Docker build has its daemon's.
    env = {**args, **image.process_env(), **_host_build_env()}
    with log.open("ab") if log else open(os.devnull, "wb") as output:
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=image.workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        tail = log.read_text()[-4000:] if log else ""
        raise RuntimeError(f"RUN {command} exited with {done.returncode}\n{tail}")


def _unquote(value: str) -> str:
    parts = shlex.split(value)
    return parts[0] if parts else ""


def _env_pairs(arguments: str) -> dict[str, str]:
    if "=" not in arguments.split(" ", 1)[0]:  # the legacy form: ENV NAME value
        name, _, value = arguments.partition(" ")
        return {name: value.strip()}
    return dict(pair.split("=", 1) for pair in shlex.split(arguments))


def _host_build_env() -> dict[str, str]:
    """pip's settings and proxies of this machine, and its HOME for pip's user configuration
    (extra indexes, certificates)."""
    proxies = {"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}
    return {
        name: value
        for name, value in os.environ.items()
        if name.startswith("PIP_") or name in proxies or name == "HOME"
    }
