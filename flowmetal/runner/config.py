"""The config file (TOML): where it is, what it may say, and the frozen records it loads into."""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ConfigError
from ..records import record


@record
class DaemonConfig:
    """`[daemon]`: how the daemon is reached."""

    listen: str = "127.0.0.1:7468"
    """HOST:PORT the daemon's HTTP server listens on (callbacks, events, control API)."""

    public_url: str | None = None
    """Base URL callbacks are given out under, when it differs from `http://<listen>`
    (behind a proxy or a tunnel); None means `http://<listen>`."""

    max_runners: int = 16
    """How many jobs the daemon runs at once (each in a runner process); more wait queued."""

    max_body: int = 1024 * 1024
    """The largest request body the daemon accepts (callbacks, events, POST /jobs), in bytes;
    a larger one gets 413."""


@record
class HttpConfig:
    """`[http]`: defaults of the `http` builtin."""

    timeout: float = 30.0
    """Seconds a request may take before it fails with status 28 (`--timeout` overrides)."""


@record
class RetryConfig:
    """`[retry]`: defaults of the `retry` builtin (its options override them)."""

    attempts: int = 5
    """How many times the body runs at most (`--attempts`)."""

    delay: float = 1.0
    """Seconds to wait before the second attempt (`--delay`)."""

    backoff: float = 2.0
    """Factor each wait is multiplied by for the next one (`--backoff`)."""

    max_delay: float = 300.0
    """Upper bound in seconds of a single wait (`--max-delay`)."""


@record
class JournalConfig:
    """`[journal]`: durability of job journals."""

    fsync: str = "always"
    """When journal writes are flushed to disk (docs/journal.md, "When records are synced"):
    `"always"` (the default): the result of every effect that changes the world is durable
    before the job goes on; `"batch"`: those flushes may wait up to BATCH_DELAY, so a power
    loss (not a crash of fm) may run such an effect again; `"never"`: left to the OS."""

    redact: tuple = ("*TOKEN*", "*SECRET*", "*PASSWORD*", "*KEY*", "*CREDENTIAL*")
    """Names of variables whose values `fm log` shows as `***` (fnmatch patterns, any case):
    in job.started's environment, in an exec's `env+`, in snapshots' variables. The journal
    itself keeps them: resuming needs them. An empty list shows everything."""

    @property
    def syncs(self) -> bool:
        """Whether the journal fsyncs at all."""
        return self.fsync != "never"


@record
class ShellConfig:
    """`[shell]`: the interactive shell."""

    prompt: str | None = None
    """The prompt template of the interactive shell; None means the built-in one."""


@record
class Config:
    """The whole configuration; every section has defaults, so a missing file is a valid config."""

    daemon: DaemonConfig = DaemonConfig()
    """`[daemon]` settings."""

    http: HttpConfig = HttpConfig()
    """`[http]` settings."""

    retry: RetryConfig = RetryConfig()
    """`[retry]` settings."""

    journal: JournalConfig = JournalConfig()
    """`[journal]` settings."""

    shell: ShellConfig = ShellConfig()
    """`[shell]` settings."""

    path: str | None = None
    """The file this was loaded from, None when no config file exists."""

    given: tuple = ()
    """The settings the file gave (`section.key`); every other one is its default."""


def config_path() -> Path:
    """$FM_CONFIG, else platformdirs' user config dir + /config.toml."""
    explicit = os.environ.get("FM_CONFIG")
    if explicit:
        return Path(explicit)
    import platformdirs  # lazy: only needed when FM_CONFIG is not set
    return Path(platformdirs.user_config_dir("flowmetal")) / "config.toml"


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load the config file (default: config_path()); a missing file gives the defaults.

    A file named explicitly (argument or $FM_CONFIG) that does not exist is an error: the user
    asked for it.
    """
    explicit = path is not None or bool(os.environ.get("FM_CONFIG"))
    p = Path(path) if path is not None else config_path()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{p}: config file not found") from None
        return Config()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config file: {e.strerror}") from None
    return parse_config(raw, str(p))


def parse_config(raw: bytes | str, filename: str) -> Config:
    """Parse and validate TOML config text; errors name `filename` and the key."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{filename}: not UTF-8 text") from None
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{filename}: invalid TOML: {e}") from None
    sections, given = {}, []
    for name, value in data.items():
        spec = _SECTIONS.get(name)
        if spec is None:
            raise ConfigError(f"{filename}: unknown section `{name}` "
                              f"(known: {', '.join(sorted(_SECTIONS))})")
        if not isinstance(value, dict):
            raise ConfigError(f"{filename}: `{name}` must be a table (`[{name}]`)")
        cls, checkers = spec
        kwargs = {}
        for key, v in value.items():
            check = checkers.get(key)
            if check is None:
                raise ConfigError(f"{filename}: unknown key `{name}.{key}` "
                                  f"(known in [{name}]: {', '.join(checkers)})")
            try:
                kwargs[key] = check(v)
            except ValueError as e:
                raise ConfigError(f"{filename}: bad value for `{name}.{key}`: {e}") from None
            given.append(f"{name}.{key}")
        sections[name] = cls(**kwargs)
    return Config(**sections, path=filename, given=tuple(given))


def settings(config: Config) -> list[tuple[str, object, str | None]]:
    """(`section.key`, its value, the file that gave it or None for the default) of every
    setting, in the order of the sections above (`fm config`)."""
    out = []
    for name, (_, checkers) in _SECTIONS.items():
        section = getattr(config, name)
        for key in checkers:
            where = config.path if f"{name}.{key}" in config.given else None
            out.append((f"{name}.{key}", getattr(section, key), where))
    return out


# ---- value checkers: each returns the converted value or raises ValueError(why) ----

def parse_duration(text: str) -> float:
    """Seconds in a duration like `250ms`, `30s`, `1h30m` or a bare number; ValueError if bad.
    The language's own parser (machine/duration.py): one grammar for config and scripts."""
    from ..machine.duration import parse_duration as parse  # lazy: only a duration string
    return parse(text)                                      # in the file needs the machine


def _duration(v) -> float:
    """A TOML number of seconds or a duration string."""
    if isinstance(v, bool):
        raise ValueError(f"expected a duration, got {v!r}")
    if isinstance(v, (int, float)):
        if v < 0 or v != v or v == float("inf"):
            raise ValueError(f"expected a non-negative number of seconds, got {v!r}")
        return float(v)
    if isinstance(v, str):
        return parse_duration(v)
    raise ValueError(f"expected a duration like \"30s\" or a number of seconds, got {v!r}")


def _positive_duration(v) -> float:
    d = _duration(v)
    if d <= 0:
        raise ValueError(f"expected a duration above zero, got {v!r}")
    return d


def _attempts(v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"expected a whole number of at least 1, got {v!r}")
    return v


def _backoff(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (1 <= v < float("inf")):
        raise ValueError(f"expected a number of at least 1, got {v!r}")
    return float(v)


def _listen(v) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected \"HOST:PORT\", got {v!r}")
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected \"HOST:PORT\" (like \"127.0.0.1:7468\"), got {v!r}")
    return v


def _url(v) -> str:
    if not isinstance(v, str) or not re.match(r"https?://[^/\s]+(/\S*)?\Z", v):
        raise ValueError(f"expected an http:// or https:// URL, got {v!r}")
    return v.rstrip("/")


def _fsync(v) -> str:
    if v not in ("always", "batch", "never"):
        raise ValueError(f"expected \"always\", \"batch\" or \"never\", got {v!r}")
    return v


def _patterns(v) -> tuple:
    if not isinstance(v, list) or not all(isinstance(p, str) and p for p in v):
        raise ValueError(f"expected a list of name patterns like [\"*TOKEN*\"], got {v!r}")
    return tuple(v)


def _string(v) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {v!r}")
    return v


_SECTIONS = {
    "daemon": (DaemonConfig, {"listen": _listen, "public_url": _url,
                              "max_runners": _attempts, "max_body": _attempts}),
    "http": (HttpConfig, {"timeout": _positive_duration}),
    "retry": (RetryConfig, {"attempts": _attempts, "delay": _duration, "backoff": _backoff,
                            "max_delay": _duration}),
    "journal": (JournalConfig, {"fsync": _fsync, "redact": _patterns}),
    "shell": (ShellConfig, {"prompt": _string}),
}
