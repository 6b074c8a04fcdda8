"""The ``multiverse`` command line.

Errors are caught once, here: a :class:`MultiverseError` prints its message
and exits with its code (2 for bad config or input, 3 for engine/image
problems, 1 otherwise). ``multiverse run`` exits 0 only if every model
succeeded, 1 if any failed and 130 if it was interrupted.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from multiverse import __version__
from multiverse.catalog import EXTRA_IMAGES, METHODS, image_of, images_for
from multiverse.errors import ConfigError, MultiverseError
from multiverse_methods.scoring.metric_sets import DEFAULT_METRIC_SET, METRIC_SETS

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

EXIT_INTERRUPTED = 130


class _SpaceSeparatedModels(click.Command):
    """Let ``--models pca mofa`` name several models, as well as ``--models pca,mofa``."""

    def parse_args(self, ctx, args):
        rewritten, in_models = [], False
        for arg in args:
            if arg == "--models":
                in_models = True
                continue
            if in_models and not arg.startswith("-"):
                rewritten += ["--models", arg]
                continue
            in_models = False
            rewritten.append(arg)
        return super().parse_args(ctx, rewritten)


def _split_models(values) -> list[str]:
    return [name for value in values for name in value.split(",") if name]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="multiverse")
def cli() -> None:
    """Run multimodal single-cell integration methods, each in its own Docker container,
    on your paired data (RNA+ATAC, RNA+protein), and compare them.

    \b
    Typical use:
      multiverse build                       # build every method's image (once)
      multiverse run --models pca mofa --input data.h5mu --output results/
      multiverse models                      # what is available and built
    """


@cli.command(cls=_SpaceSeparatedModels)
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="Runner config (YAML). Default: ./runner_config.yaml if present.")
@click.option("--models", multiple=True, metavar="NAME...",
              help="Models to run (space- or comma-separated). Default: every model in the config.")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="Input .h5mu (paired modalities) or .h5ad file. Overrides the config.")
@click.option("--output", "output_path", type=click.Path(path_type=Path),
              help="Output folder; each model writes <output>/<model>/. Overrides the config.")
@click.option("--jobs", "-j", type=int, help="Models to run at the same time (default 1).")
@click.option("--force", is_flag=True, help="Rerun models even when a valid result with the same key exists.")
@click.option("--report/--no-report", "report", default=None,
              help="Score the results and write OUTPUT/report/report.html at the end (default: the config's 'report').")
def run(config_path, models, input_path, output_path, jobs, force, report) -> None:
    """Train the chosen methods on the input, one container each, and check their results.

    Each model's result lands in OUTPUT/<model>/ (embeddings.h5ad, metrics.json,
    log.txt) only once it passed validation; a failed model's attempt is kept in
    OUTPUT/.multiverse/failed/<model>/ and never replaces an earlier result.
    A model whose earlier result is still valid and was made by the same image,
    input, parameters and seed is kept (shown as "cached"); --force reruns it.
    OUTPUT/manifest.json records what ran. Flags override runner_config.yaml.
    """
    from multiverse import api
    from multiverse.console import print_summary, reporter_for
    from multiverse.engine import Engine

    plan = api.prepare(
        config_path, models=_split_models(models) or None, input=input_path, output=output_path, jobs=jobs
    )
    if report is None:
        report = plan.report
    data = plan.input
    engine = Engine.connect()
    console.print(
        f"[bold]multiverse {__version__}[/] run {plan.run_id}: {len(plan.jobs)} model(s) on "
        f"{data.path.name} ({data.describe()}) -> {plan.output_root}"
    )
    cancel = threading.Event()
    with _cancel_on_signals(cancel), reporter_for(console, plan) as reporter:
        results = api.execute(plan, engine, reporter, cancel, force=force)
    print_summary(console, results)
    if cancel.is_set():
        err_console.print("[yellow]run interrupted[/]: finished models' results are kept")
        sys.exit(EXIT_INTERRUPTED)
    if report and any(r.status.succeeded for r in results):
        _report(plan.output_root, engine, labels=None)
    failed = [r.name for r in results if not r.status.succeeded]
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(results)} model(s) did not succeed:[/] {', '.join(failed)}")
        sys.exit(1)


class _cancel_on_signals:
    """Ctrl-C or SIGTERM sets ``cancel``; running containers are then killed promptly."""

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel
        self.previous = {}

    def _handler(self, signum, frame) -> None:
        if not self.cancel.is_set():
            err_console.print(f"\n[yellow]{signal.Signals(signum).name}: stopping every running container...[/]")
        self.cancel.set()

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


@cli.command()
@click.argument("models", nargs=-1)
@click.option("--base-image", help="Python 3.11 base image to build on (default: python:3.11-slim-bookworm "
              "if present or pullable, else the offline multiverse/python:3.11-slim-bookworm).")
@click.option("--no-cache", is_flag=True, help="Rebuild every layer.")
def build(models, base_image, no_cache) -> None:
    """Build the images of METHODS (default: all, and the 'metrics' evaluation image),
    with their wheelhouses resolved on this host. 'multiverse build metrics' builds
    only the evaluation image.

    Builds need a docker client with BuildKit and, for the wheelhouses, pip access
    to a package index from this host; nothing is downloaded inside the build.
    """
    from multiverse.build.images import ImageBuilder, choose_base_image
    from multiverse.engine import Engine

    names = _split_models(models) or [*METHODS, *EXTRA_IMAGES]
    unknown = [name for name in names if name not in METHODS and name not in EXTRA_IMAGES]
    if unknown:
        known = ", ".join([*METHODS, *EXTRA_IMAGES])
        raise ConfigError(f"unknown model(s) or image(s): {', '.join(unknown)} (known: {known})")
    engine = Engine.connect()
    base = choose_base_image(engine, base_image)
    builder = ImageBuilder(engine, base, log=lambda text: console.print(text), no_cache=no_cache)
    specs = images_for(
        [METHODS[name] for name in names if name in METHODS],
        extra=[EXTRA_IMAGES[name] for name in names if name in EXTRA_IMAGES],
    )
    built = [builder.build(spec) for spec in specs]
    builder.prune_dangling()
    table = Table(title=f"images built on {base}", title_justify="left")
    for column in ("image", "size", "build time"):
        table.add_column(column)
    for item in built:
        table.add_row(item.spec.tag, f"{item.size / 1e6:.0f} MB", f"{item.seconds:.1f} s")
    console.print(table)


@cli.command(name="models")
@click.option("--params", "show_params", is_flag=True, help="Also list every parameter and its default.")
def list_models(show_params) -> None:
    """List the methods, their images and whether they are built."""
    from multiverse.engine import Engine
    from multiverse.errors import EngineUnavailable

    try:
        engine = Engine.connect(timeout=10)
    except EngineUnavailable:
        engine = None
    table = Table(title_justify="left")
    for column in ("model", "image", "built", "modalities", "method"):
        table.add_column(column, overflow="fold")
    for spec in METHODS.values():
        built = "?" if engine is None else ("yes" if engine.has_image(image_of(spec).tag) else "no")
        table.add_row(spec.name, image_of(spec).tag, built, ", ".join(sorted(spec.accepts)), spec.summary)
    console.print(table)
    if engine is None:
        err_console.print("[yellow]no Docker engine answers: cannot tell which images are built[/]")
    if show_params:
        for spec in METHODS.values():
            defaults = spec.params.field_docs()
            console.print(f"[cyan]{spec.name}[/]: " + ", ".join(f"{k}={v!r}" for k, v in defaults.items()))


@cli.command()
@click.argument("output", type=click.Path(path_type=Path), default=Path("data/synthetic.h5mu"))
@click.option("--cells", default=600, show_default=True, help="Number of cells.")
@click.option("--second", type=click.Choice(["atac", "adt"]), default="atac", show_default=True,
              help="The modality paired with RNA.")
@click.option("--types", "n_types", default=6, show_default=True, help="Number of cell types.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
def synth(output, cells, second, n_types, seed) -> None:
    """Write a synthetic paired dataset with known cell types and batches to OUTPUT.

    Labels are in obs['cell_type'] and obs['batch']; raw counts in each
    modality's layers['counts']. Types 0/1 differ only in the second modality
    and types 2/3 only in RNA, so only an integrating method separates them all.
    """
    from multiverse.synthetic import write_synthetic

    path = write_synthetic(output, n_cells=cells, second=second, n_types=n_types, seed=seed)
    console.print(f"wrote {path} ({cells} cells, rna + {second}, {n_types} cell types, 2 batches)")


def _report(root: Path, engine, labels, metric_set=None) -> None:
    from multiverse.report import make_report

    console.print(f"[bold]evaluating[/] the results in {root} ...")
    with console.status("scoring every embedding (scib-metrics) and drawing UMAPs"):
        path = make_report(root, engine, labels, on_line=lambda line: None, metric_set=metric_set)
    console.print(f"report: {path}")


@cli.command(name="report")
@click.argument("results", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--cell-type-key", help="obs column with cell types (default: the run's labels.cell_type).")
@click.option("--batch-key", help="obs column with batches (default: the run's labels.batch).")
@click.option("--metric-set", type=click.Choice(sorted(METRIC_SETS)), default=DEFAULT_METRIC_SET, show_default=True,
              help="leiden-asw: Leiden NMI/ARI, batch ASW and the rest (no unintegrated data needed); "
                   "benchmarker: scib-metrics 0.5.10 Benchmarker's defaults (KMeans NMI/ARI, BRAS, PCR comparison), "
                   "for totals set beside published scib-metrics tables.")
def report_command(results, cell_type_key, batch_key, metric_set) -> None:
    """Score every result in RESULTS and write one self-contained HTML report.

    Runs the evaluation image (scib-metrics) against the run's labels: bio
    conservation and batch correction metrics of the chosen set, plus a UMAP of
    every embedding. Writes RESULTS/report/report.html, metrics.csv and
    metrics.json. Cells without a label are left out of the metrics that need
    it; a metric that cannot be computed is skipped, and the report says why.
    """
    from multiverse.engine import Engine

    labels = {k: v for k, v in (("cell_type", cell_type_key), ("batch", batch_key)) if v}
    _report(results, Engine.connect(), labels, metric_set)


@cli.command(name="collect")
@click.argument("results", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="File to write (default: RESULTS/embeddings.h5ad or .h5mu).")
@click.option("--format", "fmt", type=click.Choice(["h5ad", "h5mu"]), default="h5ad", show_default=True,
              help="h5ad: the input's cell annotations + every embedding; h5mu: the whole input MuData + every embedding.")
def collect_command(results, output, fmt) -> None:
    """Gather every model's embedding from RESULTS into one file, as obsm["X_<model>"].

    \b
    Then, in Python:
      adata = anndata.read_h5ad("results/embeddings.h5ad")
      sc.pp.neighbors(adata, use_rep="X_mofa"); sc.tl.umap(adata)
    """
    from multiverse.collect import collect

    path = collect(results, output, fmt)
    console.print(f"wrote {path}")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except MultiverseError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
