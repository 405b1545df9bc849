"""The `zoo` command: a thin shell over the public API. Each command parses its options, calls one
function, and renders the result as a table or ``--json``. Only :class:`zoo.ZooError` is turned
into a message; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import click

from zoo import api
from zoo.__about__ import __version__
from zoo.errors import ZooError
from zoo.frozen.engines import ENGINES
from zoo.runs.options import AUGMENTATIONS, RECIPES
from zoo.classweights import CLASS_WEIGHTS
from zoo.plugins import PluginWarning
from zoo.render import card_data, card_lines, format_bytes, format_params, table
from zoo.runs_table import SORT_KEYS
from zoo.threads import torch_threads


class _ZooGroup(click.Group):
    """Turns user errors into one clean line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZooError as exc:
            if not str(exc):  # said by another process (rank 0): only the exit code
                ctx.exit(exc.exit_code)
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code  # 1; a stopped run's is the signal's (130, 143)
            raise error from None
        except OSError as exc:
            # The place, not zoo, is at fault (a full disk, a read-only folder, a file where a
            # folder must be): one line, like a ZooError. Writes go through zoo.atomic, which says
            # this itself; this net catches a library's own write (onnx, lancedb, torch).
            from zoo.errors import STORAGE_ERRNOS, storage_error

            if exc.errno not in STORAGE_ERRNOS:
                raise
            raise click.ClickException(str(storage_error(exc, verb="use"))) from None
        except RuntimeError as exc:
            from zoo.distributed import lost_peer, world

            if lost_peer(exc):  # the launcher names the rank that died; this one only lost it
                raise click.ClickException(f"rank {world().rank}: another rank stopped "
                                           f"({str(exc).splitlines()[0][:120]})") from None
            raise


@click.group(cls=_ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.option("--registry", "registries", multiple=True, type=click.Path(dir_okay=False),
              help="Extra registry TOML file (repeatable); also ZOO_REGISTRY and $ZOO_HOME/registry.d/.")
@click.option("--offline", is_flag=True, help="Never open a socket (same as ZOO_OFFLINE=1).")
@click.pass_context
def cli(ctx: click.Context, registries: tuple[str, ...], offline: bool) -> None:
    """zoo: pretrained backbones, cut at the right place, for transfer learning."""
    if offline:
        os.environ["ZOO_OFFLINE"] = "1"  # every zoo layer reads it; the hf source turns it into local_files_only
    ctx.obj = {**(ctx.obj or {}), "registries": registries}


def _registries(ctx: click.Context) -> Sequence[str]:
    return ctx.obj["registries"] if ctx.obj else ()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--modality", type=click.Choice(["image", "text", "audio"]), help="Only this modality.")
@click.option("--task", help="Only this task, e.g. image-classification, feature-extraction.")
@click.option("--family", help="Only this architecture family, e.g. resnet, vit, convnext, bert.")
@click.option("--license", "license_", help="Only this license, e.g. apache-2.0 (any case).")
@click.option("--search", help="Only cards whose name, description, family or tags hold all these words.")
@click.option("--min-acc", type=float, help="At least this ImageNet-1k top-1 accuracy (percent).")
@click.option("--max-gflops", type=float, help="At most this many GFLOPs per image.")
@click.option("--max-params", help="At most this many parameters, e.g. 30M.")
@click.option("--source", help="Only this source type, e.g. torchvision, hf, package.")
@click.option("--tag", help="Only models with this tag.")
@click.option("--plugin", help="Only entries from this plugin ('builtin' for the built-in file, 'user' for yours).")
@click.option("--sort", default="name", show_default=True,
              help="name, params, gflops (smallest first), or a metric such as acc@1 (best first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def list_cmd(ctx: click.Context, pattern: str | None, modality: str | None, task: str | None, family: str | None,
             license_: str | None, search: str | None, min_acc: float | None, max_gflops: float | None,
             max_params: str | None, source: str | None, tag: str | None, plugin: str | None,
             sort: str, as_json: bool) -> None:
    """Find a backbone. PATTERN matches names with shell wildcards, or a substring of name/description."""
    registry = api.registry(_registries(ctx))
    cards = registry.select(pattern, modality=modality, task=task, source=source, tag=tag, plugin=plugin,
                            family=family, license=license_, search=search, min_acc=min_acc,
                            max_gflops=max_gflops, max_params=max_params, sort=sort)
    if as_json:
        _echo_json([{**card_data(c), "unavailable": registry.unavailable.get(c.name)} for c in cards])
        return
    rows = [[c.name + (" !" if c.name in registry.unavailable else ""), c.modality, c.task, c.family or "-",
             c.source.type, format_params(c.params), f"{c.gflops:.2f}" if c.gflops is not None else "-",
             _acc(c), str(c.embedding.dim), c.license] for c in cards]
    click.echo(table(["name", "modality", "task", "family", "source", "params", "gflops", "acc@1", "dim", "license"],
                     rows))
    missing = [c.name for c in cards if c.name in registry.unavailable]
    if missing:
        click.echo(f"! {len(missing)} unavailable now (a plugin is missing): see `zoo show NAME`", err=True)
    if not cards:
        for value, field in ((family, "family"), (license_, "license"), (task, "task")):
            if value:
                click.echo(f"no model matches; the catalogue's {field} values: {', '.join(registry.values_of(field))}",
                           err=True)
                break
    else:
        click.echo(f"{len(cards)} of {len(registry)} models", err=True)


def _acc(card: Any) -> str:
    value = card.metric("imagenet-1k/acc@1")
    return f"{value:.1f}" if value is not None else "-"


@cli.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def show_cmd(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show a model's whole card: source, input, cut point, head and stages."""
    card = api.get_card(name, registry_files=_registries(ctx))  # an hf:ORG/NAME is derived on first use
    problem = api.registry(_registries(ctx)).unavailable.get(card.name)
    if as_json:
        _echo_json({**card_data(card), "unavailable": problem})
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


@cli.command("pull")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Download again even when cached and intact.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def pull_cmd(ctx: click.Context, names: tuple[str, ...], force: bool, quiet: bool, as_json: bool) -> None:
    """Pull models' files into the cache, verified. A cached model returns at once, offline."""
    from zoo.pulling import pull

    records = [pull(name, force=force, quiet=quiet or as_json, registry_files=_registries(ctx)) for name in names]
    if as_json:
        _echo_json([r.to_dict() for r in records])
        return
    for record in records:
        click.echo(f"{record.model}: {format_bytes(record.size)} in {record.root}"
                   + (f" (revision {record.resolved})" if record.resolved else ""))
        for item in record.files:
            click.echo(f"  {item.name}  sha256 {item.sha256}  {format_bytes(item.size)}")


def _default(name: str) -> Any:
    """The recipe's default for one option: zoo.runs.options is the one place that defines it."""
    from zoo.runs.options import flat_defaults  # light: no torch

    return flat_defaults()[name]


def _unfreeze(value: str) -> int | str:
    if value in ("all", "auto"):
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter("a number of stages, or 'all'") from None


def _distributed_options(command: Any) -> Any:
    """--nproc/--nnodes/--rdzv-endpoint: run the command in several processes (torch.distributed)."""
    for option in (
        click.option("--rdzv-endpoint", help="With --nnodes: HOST:PORT of the rendezvous (torchrun's c10d)."),
        click.option("--nnodes", type=click.IntRange(min=1), help="Machines taking part (each runs the same command)."),
        click.option("--nproc", type=click.IntRange(min=1),
                     help="Processes on this machine (torch.distributed: gloo on CPU, NCCL on CUDA); the same as "
                          "`torchrun --nproc-per-node N -m zoo ...`."),
    ):
        command = option(command)
    return command


def _relaunched(ctx: click.Context, nproc: int | None, nnodes: int | None, endpoint: str | None) -> bool:
    """With --nproc (and not already under a launcher): this command again in ``nproc``
    processes, through torch's elastic launcher in this process; True once they are done."""
    from zoo.distributed import launch, world

    if world().distributed or (nproc in (None, 1) and nnodes in (None, 1)):
        return False
    if (nnodes or 1) > 1 and not endpoint:
        raise click.UsageError("--nnodes needs --rdzv-endpoint HOST:PORT (the same on every machine)")
    argv = _without((ctx.obj or {}).get("argv") or sys.argv[1:], ("--nproc", "--nnodes", "--rdzv-endpoint"))
    rendezvous = ([] if (nnodes or 1) == 1 else
                  ["--nnodes", str(nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", str(endpoint)])
    launch(nproc or 1, argv, rendezvous=rendezvous)
    return True


def _without(argv: Sequence[str], options: Sequence[str]) -> list[str]:
    """``argv`` without ``options`` and their values (``--nproc 2`` and ``--nproc=2`` alike)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not any(arg.startswith(f"{option}=") for option in options):
            out.append(arg)
    return out


def _speaks() -> bool:
    """Only rank 0 prints a command's result under torch.distributed."""
    from zoo.distributed import world

    return world().main


def _front_end_settings(values: tuple[str, ...]) -> dict[str, Any] | None:
    """``--front-end KEY=VALUE`` pairs as a dict, each value read as JSON where it is (numbers)."""
    settings: dict[str, Any] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint="--front-end")
        try:
            settings[key.strip()] = json.loads(text)
        except ValueError:
            settings[key.strip()] = text
    return settings or None


_front_end_option = click.option(
    "--front-end", "front_end", multiple=True, metavar="KEY=VALUE",
    help="Sounds for an image backbone: a log-mel setting (clip_seconds=2, n_mels=128, hop_ms=10...); repeatable. "
         "Every setting is recorded with the run and the exported model.")


@cli.command("finetune")
@click.argument("model", required=False)
@click.option("--data", help="Image folder, CSV/JSONL manifest, 'digits' (the offline demo), a folder of clips "
                             "(.wav/.flac/.ogg) per class, or 'spoken-digits' (the offline audio demo).")
@click.option("--val", help="Explicit validation set (same formats); default: a stratified split.")
@click.option("--test", help="Explicit test set.")
@click.option("--target", help="The manifest column(s) to learn: a column of numbers (a regression, e.g. 'age' or "
                                "'price,rating'), or of class names (instead of 'label').")
@click.option("--task", default=_default("task"), show_default=True, metavar="TASK",
              help="What the run learns: classification, multi-label, regression, or a plugin's task (detection, "
                   "segmentation, instance-segmentation; `zoo plugins` lists them); auto: numbers in --target make a "
                   "regression, ';' in labels a multi-label run, boxes a detection, masks a segmentation, else "
                   "classification.")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default: runs/MODEL-TIME).")
@click.option("--resume", type=click.Path(exists=True, file_okay=False),
              help="Continue a killed run from its last complete checkpoint.")
@click.option("--per-class", type=int, help="Use N labelled examples per class (train+val); the rest is the test set.")
@click.option("--val-split", type=float, help="Validation fraction of a split (asks for one; 0.2 when split).")
@click.option("--validation", type=click.Choice(["auto", "cv", "split"]), default=_default("validation"),
              show_default=True, help="cv: cut, head and depth chosen by cross-validation on every labelled example, "
                                      "then fitted on all; split: a validation split and early stopping; auto: cv up "
                                      "to 25 labelled examples per class (and 2000 in all).")
@click.option("--cut", default=_default("cut"), show_default=True,
              help="Where the embedding is taken: auto (chosen by cross-validation), all (every feature joined), "
                   "a feature of the card, or several joined by '+'.")
@click.option("--labels", help="Text and image-text models: the class names (or 'name: description' lines in a "
                                "file) the label prior and wise-ft's zero-shot start embed; every label of the data "
                                "must be among them. Given, the prior is used at any size.")
@click.option("--label-prior", type=click.Choice(["auto", "always", "none"]), default=_default("label_prior"),
              show_default=True,
              help="Text and image-text models, cross-validated: mix the head with the class names' zero-shot "
                   "classifier, the weight chosen on folds; auto: up to 5 labelled texts per class, where it was "
                   "measured to help, and at any size for image-text models.")
@click.option("--recipe", type=click.Choice(RECIPES), default=_default("recipe"), show_default=True,
              help="gradual: the head on frozen embeddings, then the top stages unfrozen one by one; contrastive "
                   "(text): the whole encoder trained on pairs of labelled texts (same class / not), then the head; "
                   "wise-ft (image-text models): the image tower fine-tuned from the class names' zero-shot "
                   "classifier, then zero-shot and fine-tuned weights mixed; auto: contrastive for cross-validated "
                   "text runs of 5 to 25 labelled texts per class, wise-ft for image-text models.")
@click.option("--mix", default=str(_default("mix")), show_default=True,
              help="wise-ft: the fine-tuned weights' share a in (1 - a) * zero-shot + a * fine-tuned; auto: chosen "
                   "on folds (or the validation split) among 0, 0.1 ... 1.")
@click.option("--multi-label/--single-label", "multi_label", default=None,
              help="Several labels per example (one sigmoid per label, thresholds chosen on folds); default: "
                   "multi-label when a label cell names several, separated by ';'.")
@click.option("--pairs", default=str(_default("pairs")), show_default=True,
              help="Contrastive: pairs drawn from the labelled texts (auto: 40 per text, at most 1280).")
@click.option("--contrastive-lr", type=float, default=_default("contrastive_lr"), show_default=True,
              help="Contrastive: the encoder's peak learning rate.")
@click.option("--metric", type=click.Choice(["auto", "accuracy", "macro_f1", "micro_f1", "rmse", "mae", "r2"]),
              default=_default("metric"), show_default=True,
              help="What the head's regularisation, keeping unfrozen layers and the baseline line judge by (auto: "
                   "accuracy for classes, rmse for numbers).")
@click.option("--head", type=click.Choice(["linear", "mlp"]), default=_default("head"), show_default=True)
@click.option("--hidden", type=int, default=_default("hidden"), show_default=True, help="Hidden size of the mlp head.")
@click.option("--dropout", type=float, default=_default("dropout"), show_default=True)
@click.option("--class-weight", type=click.Choice(CLASS_WEIGHTS), default=_default("class_weight"),
              show_default=True, help="Loss weights per class: auto balances when the largest class is over 3x the smallest.")
@click.option("--unfreeze", default=str(_default("unfreeze")), show_default=True,
              help="Stages to unfreeze from the top after the head, one by one: a number, 'all', or "
                   "'auto' (0 for images, 2 for text, all for sounds, as measured in bench/).")
@click.option("--epochs", "head_epochs", type=int, default=_default("head_epochs"), show_default=True, help="Max head epochs.")
@click.option("--unfreeze-epochs", type=int, help="Max epochs per unfrozen stage (default: 6; 10 for sounds).")
@click.option("--lr", "head_lr", type=float, default=_default("head_lr"), show_default=True, help="Head learning rate.")
@click.option("--backbone-lr", type=float, help="Top stage's learning rate (default: 1e-4; 1e-3 for sounds).")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Examples per training step (default: 32; 4 for detection and segmentation, as measured).")
@click.option("--seed", type=int, default=_default("seed"), show_default=True)
@click.option("--device", help="cpu, cuda, cuda:1... (default: CUDA when present).")
@click.option("--workers", type=int, help="Data-loading processes (default: one per 4 cores, none below 4).")
@click.option("--engine", type=click.Choice(ENGINES),
              help="Frozen pass: auto (onnxruntime on CPU, checked against PyTorch; PyTorch on CUDA), torch, onnxruntime.")
@click.option("--augment", type=click.Choice(AUGMENTATIONS), default=_default("augment"), show_default=True,
              help="Augmentation while the backbone learns: images, torchvision.transforms.v2 policies; sounds, "
                   "light is SpecAugment (masks and a time shift).")
@click.option("--no-augment", is_flag=True, help="No augmentation while the backbone learns (--augment none).")
@_front_end_option
@click.option("--warmup", type=float, default=_default("warmup"), show_default=True,
              help="Each unfrozen phase warms up over this fraction of its steps, then decays by a cosine.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable or mislabelled inputs (listed in the run folder).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or epoch lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as JSON.")
@click.option("--report-to", "report_to", multiple=True, metavar="TRACKER",
              help="Log the run to tensorboard, mlflow or wandb (repeat, or comma-separate, for several).")
@_distributed_options
@click.pass_context
def finetune_cmd(ctx: click.Context, model: str | None, data: str | None, resume: str | None, out: str | None,
                 unfreeze: str, no_augment: bool, quiet: bool, as_json: bool, report_to: tuple[str, ...],
                 nproc: int | None, nnodes: int | None, rdzv_endpoint: str | None, **options: Any) -> None:
    """Fine-tune MODEL on labelled data: a new head then gradual unfreezing, or (text) contrastive
    training on pairs then the head; multi-label with ';'-separated labels."""
    from zoo.train import finetune

    if resume is None and (model is None or data is None):
        raise click.UsageError("give MODEL and --data (or --resume RUN_DIR)")
    if _relaunched(ctx, nproc, nnodes, rdzv_endpoint):
        return
    options = {k: v for k, v in options.items() if v is not None}
    if _registries(ctx) and resume is None:
        options["registry"] = tuple(os.path.abspath(p) for p in _registries(ctx))
    if "multi_label" in options:
        options["multi_label"] = "yes" if options["multi_label"] else "no"
    if options.get("pairs") not in (None, "auto"):
        try:
            options["pairs"] = int(options["pairs"])
        except ValueError:
            raise click.BadParameter("a number of pairs, or 'auto'", param_hint="--pairs") from None
    if no_augment:
        options["augment"] = "none"
    options["front_end"] = _front_end_settings(options.get("front_end") or ())
    if options["front_end"] is None:
        del options["front_end"]
    run = finetune(model, data, out=out, resume=resume, unfreeze=_unfreeze(unfreeze), progress=not quiet,
                   log=(lambda text: None) if quiet or as_json else None,
                   **({"report_to": list(report_to)} if report_to else {}), **options)
    if not _speaks():
        return
    if as_json:
        _echo_json({"run": str(run.dir), "best": run.best, **run.metrics})
    else:
        click.echo(run.summary())


@cli.group("cache")
def cache_group() -> None:
    """Inspect, verify and clean zoo's cache ($ZOO_HOME)."""


@cache_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def cache_list_cmd(as_json: bool) -> None:
    """Cached models with their sizes, and the total."""
    from zoo.cache import Cache

    cache = Cache()
    entries = cache.entries()
    if as_json:
        _echo_json([e.to_dict() for e in entries])
        return
    rows = [[e.model, e.revision, e.source, str(e.files), format_bytes(e.size), e.pulled_at] for e in entries]
    click.echo(table(["model", "revision", "source", "files", "size", "pulled"], rows))
    click.echo(f"{len(entries)} cached, {format_bytes(sum(e.size for e in entries))} in {cache.root}")


@cache_group.command("verify")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def cache_verify_cmd(name: str | None, as_json: bool) -> None:
    """Re-hash cached files against their pull records; exit 1 when any is corrupted."""
    from zoo.cache import Cache

    reports = Cache().verify(name)
    if as_json:
        _echo_json([r.to_dict() for r in reports])
    else:
        for report in reports:
            status = "ok" if report.ok else "CORRUPTED"
            click.echo(f"{report.model} ({report.revision}): {status}, {report.checked} files checked")
            for problem in report.problems:
                click.echo(f"  {problem}")
    if any(not r.ok for r in reports):
        raise click.ClickException("corrupted files found: run `zoo pull --force NAME` to fetch them again")


@cache_group.command("rm")
@click.argument("name")
def cache_rm_cmd(name: str) -> None:
    """Remove a model's files and pull records from zoo's cache."""
    from zoo.cache import Cache

    removed = Cache().remove(name)
    click.echo(f"removed {len(removed)} cached revision(s) of {name}")


@cli.command("embed")
@click.argument("args", nargs=-1, metavar="MODEL DATA | --delete ID_OR_PATH...")
@click.option("--db", required=True, type=click.Path(file_okay=False),
              help="The vector database folder (LanceDB), created when missing.")
@click.option("--table", help="Table name (default: the model's name; each table holds one model's vectors).")
@click.option("--delete", is_flag=True,
              help="Remove the items named by the arguments (ids, file or folder paths, texts) from --table, "
                   "or from every table; they are never added again.")
@click.option("--index/--no-index", default=None,
              help="Build the ANN index now / never (default: once the table has 5,000 rows).")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images and bad rows (listed) instead of failing.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", help="cpu, cuda, cuda:1... (default: CUDA when present).")
@click.option("--workers", type=int, help="Data-loading processes (default: one per 4 cores, none below 4).")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="Frozen pass: auto (onnxruntime on CPU, checked against PyTorch; PyTorch on CUDA), torch, onnxruntime.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@_front_end_option
@_distributed_options
@click.pass_context
def embed_cmd(ctx: click.Context, args: tuple[str, ...], db: str, table: str | None, delete: bool,
              index: bool | None, skip_bad: bool, batch_size: int, device: str | None, workers: int | None,
              engine: str, quiet: bool, as_json: bool, front_end: tuple[str, ...], nproc: int | None,
              nnodes: int | None, rdzv_endpoint: str | None) -> None:
    """Store embeddings of DATA made by MODEL in a vector database; only new items are embedded.

    MODEL: a registry name, or a `zoo finetune` run folder (its backbone, cut where the run chose
    and with the stages it trained).

    DATA: class folders, a CSV/JSONL manifest, 'digits', a folder of images, one image, or a .txt
    file with one text per line; sounds (.wav/.flac/.ogg: class folders, a folder, one clip or
    'spoken-digits') through the log-mel front end. With --delete, the arguments are the items to remove.
    """
    from zoo.embed import delete_items, embed_dataset

    if delete:
        if not args:
            raise click.UsageError("give the ids, paths or texts to delete after --delete")
        removal = delete_items(db, list(args), table=table)
        _echo_json(removal.to_dict()) if as_json else click.echo(removal.summary())
        if removal.not_found:
            raise click.ClickException(f"nothing matched {', '.join(map(repr, removal.not_found))}: give ids from "
                                       f"`zoo search`, file or folder paths, or texts exactly as stored")
        return
    if len(args) != 2:
        raise click.UsageError("give MODEL and DATA (or --delete ID_OR_PATH...)")
    if _relaunched(ctx, nproc, nnodes, rdzv_endpoint):
        return
    report = embed_dataset(args[0], args[1], db=db, table=table, skip_bad=skip_bad, index=index,
                           batch_size=batch_size, device=device, workers=workers, engine=engine,
                           progress=not (quiet or as_json), registry_files=_registries(ctx),
                           front_end=_front_end_settings(front_end))
    if _speaks():
        _echo_json(report.to_dict()) if as_json else click.echo(report.summary())


@cli.command("search")
@click.argument("query")
@click.option("--db", required=True, type=click.Path(file_okay=False), help="The vector database folder.")
@click.option("--table", help="Table to search (default: the database's only table).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="How many results.")
@click.option("--exact", is_flag=True, help="Scan every row, even when the table has an ANN index.")
@click.option("--text", "as_text", is_flag=True,
              help="QUERY is words to search for (a text table, or an image-text model's), even where it names a "
                   "file, a folder or a URL.")
@click.option("--onnx", "exported", multiple=True, type=click.Path(dir_okay=False),
              help="Embed the query with this exported tower (`zoo export MODEL`: MODEL.onnx, MODEL.text.onnx) in "
                   "onnxruntime, without PyTorch; repeat for both towers.")
@click.option("--device", help="cpu, cuda, cuda:1... (default: CPU).")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="How the query is embedded: auto (onnxruntime on CPU, checked against PyTorch), torch, onnxruntime.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def search_cmd(ctx: click.Context, query: str, db: str, table: str | None, k: int, exact: bool, as_text: bool,
               exported: tuple[str, ...], device: str | None, engine: str, as_json: bool) -> None:
    """Nearest stored items to QUERY: an image file for an image table, a clip for a table of
    sounds, a text for a text table (--text when the words name a file); a sentence or an image
    for an image-text model's table (CLIP, SigLIP: the sentence through its text tower)."""
    from zoo.embed import search
    from zoo.render import table as table_text  # the name `table` is the option here

    # One query is too small to split over threads: on a busy machine, waiting for a second,
    # descheduled thread made each of MiniLM's operations take a scheduler slice (10-15 ms on one
    # thread, 700 ms on two). onnxruntime's query session has one thread already; PyTorch's count is
    # the process's, which this command owns.
    with torch_threads(1) if engine == "torch" else contextlib.nullcontext():
        result = search(db, query, table=table, k=k, exact=exact, device=device, engine=engine,
                        registry_files=_registries(ctx), as_text=as_text, exported=exported)
    if as_json:
        _echo_json(result.to_dict())
        return
    rows = [[str(h.rank), f"{h.score:.4f}", h.label or "-", h.id, _short(h.source)] for h in result.hits]
    click.echo(table_text(["rank", "score", "label", "id", "source"], rows))
    click.echo(f"{len(result.hits)} of table {result.table!r} ({result.model}), {result.method}, "
               f"{result.seconds * 1000:.0f} ms")


@cli.command("fewshot")
@click.argument("model")
@click.argument("inputs", nargs=-1)
@click.option("--support", help="Labelled examples (class folders, CSV/JSONL manifest, digits): builds the classifier.")
@click.option("--labels", help="Zero-shot, no examples: label names ('sport,politics,...') or a file of one label per "
                               "line ('label: description' embeds the description).")
@click.option("--template", "templates", multiple=True,
              help="With --labels: a prompt with {} for the label (repeat to average several; default for texts: "
                   "'{}', 'a text about {}.', 'this text is about {}.'; for images: 'a photo of a {}.' and six more).")
@click.option("--out", type=click.Path(file_okay=False), help="Where to save it (default: fewshot/MODEL-TIME).")
@click.option("--predict", is_flag=True, help="Classify the INPUTS after it: image files or folders, or texts.")
@click.option("--text", "as_text", is_flag=True,
              help="With --predict on a text classifier: the INPUTS are words, even where one names a file or folder.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Skip unreadable or bad support examples.")
@click.option("--device", help="cpu, cuda, cuda:1... for embedding the support set.")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="Frozen pass: auto (onnxruntime on CPU, checked against PyTorch; PyTorch on CUDA), torch, onnxruntime.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@_front_end_option
@click.pass_context
def fewshot_cmd(ctx: click.Context, model: str, inputs: tuple[str, ...], support: str | None, labels: str | None,
                templates: tuple[str, ...], out: str | None, predict: bool, as_text: bool, top_k: int, skip_bad: bool,
                device: str | None, engine: str, as_json: bool, front_end: tuple[str, ...]) -> None:
    """A nearest-centroid classifier from a few labelled examples per class (--support), or from
    the label names alone (--labels, zero-shot: texts with a text encoder, images with an
    image-text model such as CLIP or SigLIP), without training.

    MODEL is a model name (with --support or --labels) or a saved classifier folder (to --predict with it).
    """
    from zoo.embed.prototypes import default_folder, expand_inputs, fewshot, load_fewshot, zero_shot
    from zoo.render import table as table_text

    if inputs and not predict:
        raise click.UsageError("put --predict before the inputs to classify")
    if predict and not inputs:
        raise click.UsageError("give the inputs to classify after --predict")
    if support is not None and labels is not None:
        raise click.UsageError("give --support (examples) or --labels (zero-shot), not both")
    if templates and labels is None:
        raise click.UsageError("--template goes with --labels")
    if as_text and not predict:
        raise click.UsageError("--text goes with --predict")
    if support is not None:
        classifier = fewshot(model, support, skip_bad=skip_bad, device=device, engine=engine, progress=not as_json,
                             registry_files=_registries(ctx), front_end=_front_end_settings(front_end))
        classifier.save(out or default_folder(classifier.model))
    elif labels is not None:
        classifier = zero_shot(model, labels, templates=templates or None, engine=engine,
                               registry_files=_registries(ctx))
        classifier.save(out or default_folder(classifier.model))
    elif os.path.isdir(model):
        classifier = load_fewshot(model, engine=engine, registry_files=_registries(ctx))
    else:
        raise click.UsageError(f"give --support DATA (or --labels NAMES) to build a classifier for {model!r}, or "
                               f"the folder of a saved classifier")
    predictions = (classifier.predict(expand_inputs(inputs, classifier.modality), top_k=top_k, as_text=as_text)
                   if predict else [])
    if as_json:
        _echo_json({"classifier": str(classifier.path), "model": classifier.model, "classes": list(classifier.classes),
                    "support": dict(zip(classifier.classes, classifier.counts)),
                    "predictions": [p.to_dict() for p in predictions]})
        return
    if support is not None:
        click.echo(f"saved a few-shot classifier to {classifier.path}: {len(classifier.classes)} classes from "
                   f"{sum(classifier.counts)} examples ({classifier.model})")
    elif labels is not None:
        click.echo(f"saved a zero-shot classifier to {classifier.path}: {len(classifier.classes)} classes from their "
                   f"names ({classifier.model})")
    if predictions:
        rows = [[_short(p.input), p.label, f"{p.top[0][1]:.3f}",
                 ", ".join(f"{label} {prob:.3f}" for label, prob in p.top[1:]) or "-"] for p in predictions]
        click.echo(table_text(["input", "label", "probability", "next"], rows))


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


@cli.command("probe")
@click.argument("models", nargs=-1)
@click.option("--data", required=True, help="Labelled data: class folders, CSV/JSONL manifest, or 'digits'.")
@click.option("--per-class", type=int, help="Probe on N labelled examples per class; the rest is a test set.")
@click.option("--target", help="Manifest column(s) of numbers to probe for (a ridge probe, ranked by cross-validated R²).")
@click.option("--test", help="A held-out test set to score each probe on (never used to rank).")
@click.option("--score-held-out", is_flag=True, help="With --per-class: also score each probe on the examples left out.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--modality", type=click.Choice(["image", "text", "audio"]), help="Also probe every registry model of this modality.")
@click.option("--max-params", help="With a registry filter: at most this many parameters, e.g. 30M.")
@click.option("--tag", help="Also probe every registry model with this tag (e.g. offline).")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="Frozen pass: auto (onnxruntime on CPU, checked against PyTorch), torch, onnxruntime.")
@click.option("--class-weight", type=click.Choice(CLASS_WEIGHTS), default="auto", show_default=True,
              help="Probe loss weights per class: auto balances when the largest class is over 3x the smallest.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable or bad examples instead of failing.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for probe.json and probe.png (default: probes/DATA-TIME).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_front_end_option
@click.pass_context
def probe_cmd(ctx: click.Context, models: tuple[str, ...], data: str, out: str | None, quiet: bool, as_json: bool,
              **options: Any) -> None:
    """Rank MODELS (and registry filters) by a cross-validated linear probe at every cut point."""
    from zoo.probing.run import default_folder, probe

    options["front_end"] = _front_end_settings(options.get("front_end") or ())
    report = probe(models, data, out=out or default_folder(data), registry_files=_registries(ctx),
                   log=(lambda text: None) if quiet or as_json else None, **options)
    if as_json:
        _echo_json(report.to_dict())
        return
    click.echo(report.table())
    if report.files:
        click.echo("wrote " + ", ".join(report.files))


@cli.command("export")
@click.argument("source")
@click.option("-o", "--out", type=click.Path(), help="ONNX file to write (default: FOLDER/model.onnx for a run or few-shot folder, or ./MODEL.onnx).")
@click.option("--quantize", type=click.Choice(["int8"]), help="Static int8 (QDQ), calibrated on the run's training data (a few-shot folder: its support set).")
@click.option("--max-drop", type=float,
              help="Refuse int8 when it loses more accuracy points than this on the run's held-out data (validation "
                   "and test sets); default 1. A regression: when its RMSE grows by more than this percentage of the "
                   "target's standard deviation; default 2.")
@click.option("--calibration", "calibrate_method", type=click.Choice(["percentile", "minmax", "entropy"]),
              default="percentile", show_default=True, help="How int8 activation ranges are chosen.")
@click.option("--atol", type=float, default=1e-4, show_default=True, help="Validation: absolute tolerance.")
@click.option("--rtol", type=float, default=1e-3, show_default=True, help="Validation: relative tolerance.")
@click.option("--samples", type=int, default=16, show_default=True, help="Inputs to validate on.")
@click.option("--opset", type=int, default=18, show_default=True)
@click.option("--random-weights", is_flag=True, help="A model's architecture with random weights (tests, benchmarks).")
@click.option("--triton", type=click.Path(file_okay=False),
              help="Also write a Triton model repository here (config.pbtxt with dynamic batching, the graph, labels).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the result and metadata as JSON.")
@click.pass_context
def export_cmd(ctx: click.Context, source: str, out: str | None, quantize: str | None, calibrate_method: str,
               random_weights: bool, triton: str | None, quiet: bool, as_json: bool, **options: Any) -> None:
    """Export a fine-tuned RUN folder or a few-shot folder (probabilities), or a MODEL's embedding, to
    validated ONNX."""
    from zoo.export import QuantSettings, export

    result = export(source, out, quantize=quantize, pretrained=not random_weights,
                    settings=QuantSettings(calibrate_method=calibrate_method), registry_files=_registries(ctx),
                    log=(lambda text: None) if quiet or as_json else None, **options)
    repository = None
    if triton:
        from zoo.export.triton import write_triton

        repository = write_triton(result.path, triton)
    if as_json:
        _echo_json({**result.to_dict(), **({"triton": repository.to_dict()} if repository else {})})
    else:
        click.echo("\n".join(result.summary()))
        if repository:
            click.echo(f"wrote a Triton model repository: {repository.folder} (config.pbtxt, version "
                       f"{repository.version}, max_batch_size {repository.max_batch_size}; README.md says what "
                       f"clients send)")


@cli.command("predict")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("inputs", nargs=-1)
@click.option("--file", "texts_file", type=click.Path(dir_okay=False), help="Texts to classify, one per line.")
@click.option("--top-k", "-k", type=int, default=5, show_default=True, help="Labels per input.")
@click.option("--provider", help="cpu, cuda, tensorrt or an onnxruntime provider name (default: best available).")
@click.option("--out", type=click.Path(), help="Embedding models: save the embeddings as .npy; detectors: a folder "
                                           "of the pictures with their boxes drawn (PNG); segmenters: a folder of "
                                           "masks, one PNG per picture (pixel values: class indices; instance segmenters: "
                                           "object numbers, 1 for the first box listed).")
@click.option("--overlay", is_flag=True, help="Segmenters: with --out, write each picture with its mask laid over it "
                                             "(instance segmenters: and their boxes).")
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="Detectors: show boxes scoring at least this (0: every box the model kept).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def predict_cmd(model: str, inputs: tuple[str, ...], texts_file: str | None, top_k: int, provider: str | None,
                out: str | None, overlay: bool, min_score: float, as_json: bool) -> None:
    """Run an exported MODEL on images (files, folders, globs) or texts, with onnxruntime only."""
    from zoo.runtime import predict, read_texts

    items = list(inputs) + (read_texts(texts_file) if texts_file else [])
    result = predict(model, items, top_k=top_k, provider=provider, min_score=min_score)
    boxes = any(p.boxes is not None for p in result.predictions)
    masks = any(p.shares is not None for p in result.predictions)
    if out is not None and (boxes or masks):
        from zoo.drawing import save_annotated

        written = save_annotated(result.inputs, result.predictions, result.info.labels, out, overlay=overlay)
    elif out is not None:
        if result.embeddings is None:
            raise click.UsageError("--out saves embeddings (or a detector's pictures); this model is a classifier "
                                   "(use --json)")
        import numpy as np

        np.save(out, result.embeddings)
    if as_json:
        _echo_json(result.to_dict())
    elif result.embeddings is not None:
        for name, row in zip(result.inputs, result.embeddings):
            head = " ".join(f"{v:+.4f}" for v in row[:6])
            click.echo(f"{name}\t[{head} ... ] ({len(row)} dims)")
        if out is not None:
            click.echo(f"saved {result.embeddings.shape[0]}x{result.embeddings.shape[1]} embeddings to {out}")
    elif boxes:  # a detector: each picture's kept boxes, best first
        areas = any(b.pixels is not None for p in result.predictions for b in p.boxes or ())
        rows = [[p.input if i == 0 else "", b.label, f"{b.score:.3f}", " ".join(f"{v:.1f}" for v in b.box)]
                + ([str(b.pixels)] if areas else []) for p in result.predictions for i, b in enumerate(p.boxes or ())]
        click.echo(table(["input", "label", "score", "box (x0 y0 x1 y1)"] + (["pixels"] if areas else []), rows))
        if out is not None:
            instances = any(p.mask is not None for p in result.predictions)
            click.echo(f"wrote {len(written)} {'object masks' if instances and not overlay else 'pictures'} "
                       f"{'with their boxes ' if overlay or not instances else ''}in {out}")
    elif masks:  # a segmenter: each picture's classes by their share of its pixels
        rows = [[p.input if i == 0 else "", label, f"{share:.2%}"] for p in result.predictions
                for i, (label, share) in enumerate(sorted(p.shares or (), key=lambda pair: -pair[1])) if share > 0]
        click.echo(table(["input", "label", "pixels"], rows))
        if out is not None:
            click.echo(f"wrote {len(written)} {'overlays' if overlay else 'masks'} in {out}")
    elif any(p.values is not None for p in result.predictions):  # a regression: numbers by target
        rows = [[p.input if i == 0 else "", target, f"{value:.6g}"] for p in result.predictions
                for i, (target, value) in enumerate(p.values or ())]
        click.echo(table(["input", "target", "value"], rows))
    else:
        multi = any(p.labels is not None for p in result.predictions)
        rows = [[p.input if i == 0 else "", label, f"{prob:.4f}"]
                + (["yes" if label in p.labels else ""] if multi else [])
                for p in result.predictions for i, (label, prob) in enumerate(p.top)]
        click.echo(table(["input", "label", "probability"] + (["over threshold"] if multi else []), rows))


def _serve_default(name: str) -> Any:
    """zoo serve's defaults are ServeSettings' (a stdlib-only module: --help stays light)."""
    from zoo.serve.settings import ServeSettings

    return ServeSettings.__dataclass_fields__[name].default


@cli.command("serve")
@click.argument("models", nargs=-1, required=True)
@click.option("--host", default=_serve_default("host"), show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=int, default=_serve_default("port"), show_default=True, help="Port (0: any free one).")
@click.option("--max-batch", type=int,
              help="Items per batch at most (1: no batching; default: 4 images of 224x224 on the CPU, else 32).")
@click.option("--max-delay-ms", type=float, default=_serve_default("max_delay_ms"), show_default=True,
              help="How long a batch waits for more requests after its first.")
@click.option("--max-concurrent", type=int, default=_serve_default("max_concurrent"), show_default=True,
              help="Inference requests at once; beyond it, 503 with Retry-After.")
@click.option("--max-body-mb", type=float, default=_serve_default("max_body_mb"), show_default=True,
              help="Largest request body (413 beyond).")
@click.option("--max-pixels", type=int, default=_serve_default("max_pixels"), show_default=True,
              help="Largest image, in pixels, read from its header before decoding (413 beyond).")
@click.option("--timeout", "timeout_s", type=float, default=_serve_default("timeout_s"), show_default=True,
              help="Seconds a request may take (504 beyond).")
@click.option("--drain", "drain_s", type=float, default=_serve_default("drain_s"), show_default=True,
              help="On SIGTERM, seconds for requests in flight to finish.")
@click.option("--top-k", type=int, default=_serve_default("top_k"), show_default=True,
              help="Labels per prediction unless a request asks.")
@click.option("--provider", help="cpu, cuda, tensorrt or an onnxruntime provider name (default: best available).")
@click.option("--threads", type=int, help="Compute threads in all (default: the cores this process may use).")
@click.option("--workers", type=int, default=_serve_default("workers"), show_default=True,
              help="Batches run at once, sharing the threads.")
@click.option("--verify-every", "verify_every_s", type=float, default=_serve_default("verify_every_s"),
              show_default=True,
              help="Seconds between full sha256 checks of each model file.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="warning",
              show_default=True)
def serve_cmd(models: tuple[str, ...], log_level: str, **options: Any) -> None:
    """Serve exported MODELS over HTTP (onnxruntime only): TF Serving and KServe v2 endpoints,
    dynamic batching, health, Prometheus metrics, and a page to try them at /.

    Each of MODELS is an ONNX file from `zoo export`, a run or few-shot folder holding one, or
    NAME=PATH / NAME/VERSION=PATH.
    """
    from zoo.serve import ServeSettings, serve

    serve(models, ServeSettings(**options), announce=lambda line: click.echo(line), log_level=log_level)


@cli.command("bench")
@click.argument("source")
@click.option("--batch", type=int, default=16, show_default=True, help="Batch size for throughput.")
@click.option("--runs", type=int, default=30, show_default=True, help="Timed rounds at batch 1.")
@click.option("--threads", type=int, help="Threads for PyTorch and onnxruntime alike (default: all cores).")
@click.option("--no-int8", is_flag=True, help="Skip the int8 model.")
@click.option("--random-weights", is_flag=True, help="A model's architecture with random weights (speed only).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def bench_cmd(ctx: click.Context, source: str, batch: int, runs: int, threads: int | None, no_int8: bool, random_weights: bool,
              as_json: bool) -> None:
    """PyTorch eager vs onnxruntime fp32 vs int8 on a RUN or MODEL: latency and throughput."""
    from zoo.benchmark import bench

    result = bench(source, batch=batch, runs=runs, threads=threads, int8=not no_int8,
                   pretrained=not random_weights, log=(lambda text: None) if as_json else None,
                   registry_files=_registries(ctx))
    if as_json:
        _echo_json(result.to_dict())
        return
    rows = [[r.backend, f"{r.latency_ms:.1f}", f"{r.p90_ms:.1f}", f"{r.speedup:.2f}x", f"{r.throughput:.1f}",
             f"{r.throughput_ratio:.2f}x"] for r in result.rows]
    click.echo(f"{result.model} on {result.machine}, {result.threads} threads")
    click.echo(table(["backend", "b1 median ms", "b1 p90 ms", "b1 vs torch", f"b{result.batch} items/s",
                      f"b{result.batch} vs torch"], rows))
    if len(result.rows) == 3:
        fp32, int8 = result.rows[1], result.rows[2]
        click.echo(f"int8 vs fp32: {fp32.latency_ms / int8.latency_ms:.2f}x at batch 1, "
                   f"{int8.throughput / fp32.throughput:.2f}x at batch {result.batch}")
    evaluation = (result.int8 or {}).get("evaluation", {})
    if "fp32_accuracy" in evaluation:
        click.echo(f"int8 accuracy on {evaluation['set']}: {evaluation['fp32_accuracy']:.3f} -> "
                   f"{evaluation['int8_accuracy']:.3f} (drop {evaluation['drop_points']:.1f} points)")
    elif evaluation:
        click.echo(f"int8 vs fp32 outputs: cosine similarity mean {evaluation['cosine_mean']:.4f}")
    for note in result.notes:
        click.echo(f"note: {note}")


@cli.command("report")
@click.argument("run", type=click.Path(file_okay=False))
def report_cmd(run: str) -> None:
    """Write RUN's report page (report/index.html) again, from its files."""
    from zoo.report import build

    click.echo(str(build(run)))


@cli.command("runs")
@click.argument("folder", default="runs", type=click.Path(file_okay=False))
@click.option("--sort", default="started", show_default=True, type=click.Choice(SORT_KEYS),
              help="Order: metric and baseline best first, seconds shortest first, started newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def runs_cmd(folder: str, sort: str, as_json: bool) -> None:
    """The runs in FOLDER (default: runs): model, data, task, metric, baseline, time, status."""
    from zoo.runs_table import list_runs

    rows = list_runs(folder, sort=sort)
    if as_json:
        _echo_json([row.to_dict() for row in rows])
        return

    def score(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    click.echo(table(["run", "model", "data", "task", "metric", "transfer", "baseline", "time", "status"],
                     [[r.name, r.model or "-", r.data or "-", r.task, f"{r.metric_name or '-'} ({r.on or '-'})",
                       score(r.metric), score(r.baseline), "-" if r.seconds is None else f"{r.seconds:.0f} s",
                       r.status] for r in rows]))
    for row in rows:
        if row.status in ("resumable", "killed"):
            click.echo(f"{row.name}: {row.status}: {row.detail}")
    click.echo(f"{len(rows)} run(s) in {folder}")


def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
    if issubclass(category, PluginWarning):
        sys.stderr.write(f"zoo: warning: {message}\n")
    else:
        _original_showwarning(message, category, filename, lineno, file, line)


_original_showwarning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    warnings.showwarning = _show_warning
    args = list(argv) if argv is not None else sys.argv[1:]
    cli.main(args=args, prog_name="zoo", obj={"argv": args})


if __name__ == "__main__":  # pragma: no cover
    main()
