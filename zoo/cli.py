"""The `zoo` command: a thin shell over the public API. Each command parses its options, calls one
function, and renders the result as a table or ``--json``. Only :class:`zoo.ZooError` is turned
into a message; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import click

from zoo import api
from zoo.__about__ import __version__
from zoo.errors import ZooError
from zoo.plugins import PluginWarning
from zoo.render import card_lines, format_params, table


class _ZooGroup(click.Group):
    """Turns user errors into one clean line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZooError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.option("--registry", "registries", multiple=True, type=click.Path(dir_okay=False),
              help="Extra registry TOML file (repeatable); also ZOO_REGISTRY and $ZOO_HOME/registry.d/.")
@click.pass_context
def cli(ctx: click.Context, registries: tuple[str, ...]) -> None:
    """zoo: pretrained backbones, cut at the right place, for transfer learning."""
    ctx.obj = {"registries": registries}


def _registries(ctx: click.Context) -> Sequence[str]:
    return ctx.obj["registries"] if ctx.obj else ()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--modality", type=click.Choice(["image", "text", "audio"]), help="Only this modality.")
@click.option("--task", help="Only this task, e.g. image-classification.")
@click.option("--source", help="Only this source type, e.g. torchvision, hf, package.")
@click.option("--tag", help="Only models with this tag.")
@click.option("--plugin", help="Only entries from this plugin ('builtin' for the built-in file, 'user' for yours).")
@click.option("--max-params", help="At most this many parameters, e.g. 30M.")
@click.option("--sort", default="name", show_default=True,
              help="name, params, or a metric such as acc@1 (best first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def list_cmd(ctx: click.Context, pattern: str | None, modality: str | None, task: str | None,
             source: str | None, tag: str | None, plugin: str | None, max_params: str | None,
             sort: str, as_json: bool) -> None:
    """List models. PATTERN matches names with shell wildcards, or a substring of name/description."""
    registry = api.registry(_registries(ctx))
    cards = registry.select(pattern, modality=modality, task=task, source=source, tag=tag,
                            plugin=plugin, max_params=max_params, sort=sort)
    if as_json:
        _echo_json([{**c.to_dict(), "unavailable": registry.unavailable.get(c.name)} for c in cards])
        return
    rows = [[c.name + (" !" if c.name in registry.unavailable else ""), c.modality, c.task,
             c.source.type, format_params(c.params), str(c.embedding.dim), c.license] for c in cards]
    click.echo(table(["name", "modality", "task", "source", "params", "dim", "license"], rows))
    missing = [c.name for c in cards if c.name in registry.unavailable]
    if missing:
        click.echo(f"! {len(missing)} unavailable now (a plugin is missing): see `zoo show NAME`", err=True)


@cli.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def show_cmd(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show a model's whole card: source, input, cut point, head and stages."""
    registry = api.registry(_registries(ctx))
    card = registry.card(name)
    problem = registry.unavailable.get(name)
    if as_json:
        _echo_json({**card.to_dict(), "unavailable": problem})
        return
    click.echo("\n".join(card_lines(card, problem)))


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def plugins_cmd(as_json: bool) -> None:
    """List plugins: version, hooks, where each came from, and whether it loaded."""
    infos = api.list_plugins()
    if as_json:
        _echo_json([i.to_dict() for i in infos])
        return
    rows = [[i.name, i.version or "-", i.origin, i.status, ", ".join(i.hooks) or "-"] for i in infos]
    click.echo(table(["name", "version", "origin", "status", "hooks"], rows))
    for info in infos:
        if info.error:
            click.echo(f"{info.name}: {info.error}", err=True)


def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
    if issubclass(category, PluginWarning):
        sys.stderr.write(f"zoo: warning: {message}\n")
    else:
        _original_showwarning(message, category, filename, lineno, file, line)


_original_showwarning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    warnings.showwarning = _show_warning
    cli.main(args=list(argv) if argv is not None else None, prog_name="zoo")


if __name__ == "__main__":  # pragma: no cover
    main()
