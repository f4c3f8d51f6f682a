"""What every subcommand module of :mod:`edgeintent.cli` shares: the click group ``main``, the consoles,
small parsing / printing helpers, and the lazy click pieces that build choices and help from registries.

This module imports no other module of the package, so every stage module can import it (and nothing
here can form an import circle). It stays cheap to import: click, rich and the standard library only;
anything from the toolkit is imported inside a function, when a command runs or a help text is shown.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import click
from rich.console import Console

from edgeintent import __version__
from edgeintent.errors import ConfigError, EdgeIntentError

# tables are wide: when output is not a terminal (CI logs, pipes), do not squeeze them into 80 columns
# emoji=False: ":a:" in a message (a source spec such as "sim:a:b") must print as typed, not as an emoji
console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
err_console = Console(stderr=True, emoji=False)


class _Group(click.Group):
    """Turns EdgeIntentError, and click's usage errors, into one line on stderr and exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode: bool = True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:  # a group without its subcommand: its help
            click.echo(err.ctx.get_help())
            sys.exit(0)
        except click.UsageError as err:  # no such option, missing option, invalid value, …
            path = err.ctx.command_path if err.ctx is not None else "edgeintent"
            message = " ".join(err.format_message().split()).rstrip(".")
            err_console.print(f"[bold red]error:[/] {path}: {message} (see {path} --help)", highlight=False, soft_wrap=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgeIntentError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            sys.exit(err.exit_code)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="edgeintent")
def main() -> None:
    """On-device intent inference: featurize event logs, train, export, check, bench, decide."""


# ---------------------------------------------------------------------------------------------
# choices and help built from registries, on demand
# ---------------------------------------------------------------------------------------------


class LazyChoice(click.Choice):
    """A :class:`click.Choice` whose choices come from ``load()`` (a registry), called the first time
    they are needed (parsing a value, showing help), not when the CLI is imported."""

    def __init__(self, load: Callable[[], Iterable[str]], case_sensitive: bool = True) -> None:
        # click.Choice.__init__ would read the choices now; set its other attribute ourselves instead
        self._load = load
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = case_sensitive

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices


class LazyHelpOption(click.Option):
    """A :class:`click.Option` whose help text is ``lazy_help()``, built the first time help is shown."""

    def __init__(self, *args, lazy_help: Callable[[], str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lazy_help = lazy_help

    def _resolve_help(self) -> None:
        if self.help is None:
            self.help = self._lazy_help()

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self._resolve_help()
        return super().get_help_record(ctx)

    def to_info_dict(self) -> dict:
        self._resolve_help()
        return super().to_info_dict()


def lazy_option(*param_decls: str, help: Callable[[], str], **attrs) -> Callable:
    """``click.option`` with a help text built on demand by ``help()`` (see :class:`LazyHelpOption`)."""
    return click.option(*param_decls, cls=LazyHelpOption, lazy_help=help, **attrs)


def words(names: Iterable[str], last: str = "or") -> str:
    """``["a", "b", "c"]`` → ``"a, b or c"``."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {last} " + names[-1]


def source_help() -> str:
    """The data-source help line, from the sources registry."""
    from edgeintent.toolkit.data.sources import source_help as _source_help

    return _source_help()


def targets_help(suffix: str = "") -> str:
    """``"onnx, coreml, mnn, a comma list or all"`` from the target registry, plus ``suffix``."""
    from edgeintent.exporters import list_targets

    return f"{', '.join(list_targets())}, a comma list or all{suffix}"


# ---------------------------------------------------------------------------------------------
# small shared helpers
# ---------------------------------------------------------------------------------------------


def print_json(obj) -> None:
    from edgeintent.io import json_default

    click.echo(json.dumps(obj, indent=2, default=json_default))


def check_out_dir(path: Path) -> None:
    """Create the output's directory (``mkdir -p``); a one-line error when a file is in the way."""
    from edgeintent.io import ensure_parent

    ensure_parent(path)


def parse_options(pairs: tuple[str, ...]) -> dict:
    """``("a=1", "b=true", "c=x")`` → ``{"a": 1, "b": True, "c": "x"}`` (``--set KEY=VALUE``)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
        else:
            try:
                out[key] = int(value)
            except ValueError:
                try:
                    out[key] = float(value)
                except ValueError:
                    out[key] = value
    return out


def split_list(text: str | None) -> tuple[str, ...] | None:
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text else None
