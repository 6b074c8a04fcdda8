"""The ``multiverse`` command line.

Errors are caught once, here: a :class:`MultiverseError` prints its message
and exits with its code (2 for bad config or input, 3 for engine/image
problems, 1 otherwise). ``multiverse run`` exits 0 only if every model
succeeded, 1 if any failed and 130 if it was interrupted.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from multiverse import __version__
from multiverse.catalog import EXTRA_IMAGES, METHODS, image_of, images_for
from multiverse.errors import ConfigError, MultiverseError
from multiverse.synth.presets import DEFAULT_CHUNK, PRESETS, REFERENCE_FILES
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
              help="Input .h5mu (paired modalities), .h5ad or Cell Ranger .h5 file: one dataset. Overrides the config.")
@click.option("--output", "output_path", type=click.Path(path_type=Path),
              help="Output folder; each job writes <output>/<dataset>/<model>/seed-<s>/. Overrides the config.")
@click.option("--jobs", "-j", type=int, help="Models to run at the same time (default 1).")
@click.option("--force", is_flag=True, help="Rerun models even when a valid result with the same key exists.")
@click.option("--report/--no-report", "report", default=None,
              help="Score the results and write OUTPUT/report/report.html at the end (default: the config's 'report').")
@click.option("--backend", "backend_name", type=click.Choice(["docker", "podman", "slurm"]), default=None,
              help="Where the containers run: the local Docker engine, Podman's Docker-compatible service, or one "
                   "Slurm job per model (the config's 'slurm:' section; docs/CLUSTER.md). Default: the config's "
                   "'backend', else docker.")
@click.option("--dry-run", is_flag=True, help="Only show the job grid (as 'multiverse plan' does); start nothing.")
def run(config_path, models, input_path, output_path, jobs, force, report, backend_name, dry_run) -> None:
    """Train the chosen methods on the input (or every dataset of the config), one container per
    dataset, model, grid point and seed, and check their results.

    Each job's result lands in OUTPUT/<dataset>/<model>/seed-<s>/ (embeddings.h5ad,
    metrics.json, log.txt, provenance.json) only once it passed validation; a failed
    attempt is kept in OUTPUT/.multiverse/failed/ and never replaces an earlier result.
    A job whose earlier result is still valid and has the same key (everything that
    reached its container) is kept (shown as "cached"); --force reruns it.
    OUTPUT/manifest.json records what ran. Flags override runner_config.yaml.
    """
    from multiverse import api
    from multiverse.console import print_summary, reporter_for

    plan = api.prepare(
        config_path, models=_split_models(models) or None, input=input_path, output=output_path, jobs=jobs,
        report=report,
    )
    if dry_run:
        _show_plan(plan, backend_name, force)
        return
    report = plan.report
    backend = _connect_backend(backend_name or plan.backend, plan)
    if len(plan.datasets) == 1:
        data = plan.input
        on = f"{data.path.name} ({data.describe()})"
    else:
        on = f"{len(plan.datasets)} datasets ({', '.join(plan.datasets)})"
    console.print(Text.assemble(
        (f"multiverse {__version__}", "bold"),
        f" run {plan.run_id}: {len(plan.jobs)} job(s) on {on} -> {plan.output_root} ({backend.name})",
    ))
    for note in plan.notes:
        console.print(Text.assemble(("note: ", "yellow"), note))
    cancel = threading.Event()
    with _cancel_on_signals(cancel), reporter_for(console, plan) as reporter:
        results = api.execute(plan, backend, reporter, cancel, force=force)
    print_summary(console, results)
    if cancel.is_set():
        err_console.print("[yellow]run interrupted[/]: finished models' results are kept")
        sys.exit(EXIT_INTERRUPTED)
    if report and any(r.status.succeeded for r in results):
        from multiverse.report.evaluate import EvaluationOptions

        _report(plan.output_root, backend, None, EvaluationOptions.from_settings(plan.evaluation))
    failed = [r.name for r in results if not r.status.succeeded]
    if failed:
        err_console.print(Text(f"{len(failed)} of {len(results)} job(s) did not succeed: ", style="red") + Text(", ".join(failed)))
        sys.exit(1)


def _connect_backend(name: str, plan):
    from multiverse.backends import connect

    if name != "slurm":
        return connect(name)
    from multiverse.backends.slurm import SlurmOptions

    settings = plan.slurm
    options = SlurmOptions(
        partition=settings.partition,
        account=settings.account,
        options=tuple(settings.options),
        engine=settings.engine,
        engine_url=settings.engine_url,
        images=settings.images,
        python=settings.python,
        poll_s=settings.poll,
    )
    # The jobs' files live under the output root, which the nodes must see (shared storage).
    return connect("slurm", slurm=options, work_dir=plan.work_dir / "slurm")


def _show_plan(plan, backend_name, force: bool = False) -> None:
    from multiverse.console import fmt_seconds
    from multiverse.errors import EngineUnavailable
    from multiverse.preview import preview

    try:
        backend = _connect_backend(backend_name or plan.backend, plan)
    except EngineUnavailable as exc:
        backend = None
        err_console.print(Text(f"note: {exc.message} Cached results cannot be told apart.", style="yellow"))
    rows = preview(plan, backend)
    if force:
        for row in rows:
            row.status = "run" if row.status == "cached" else row.status
    table = Table(title=f"plan: {len(rows)} job(s) -> {plan.output_root}", title_justify="left")
    for column in ("job", "method", "status", "expected", "detail"):
        table.add_column(column, overflow="fold")
    style = {"cached": "green", "run": "bold", "not applicable": "yellow", "unknown": "yellow"}
    for row in rows:
        table.add_row(Text(row.job.name), Text(row.job.method), Text(row.status, style=style[row.status]),
                      fmt_seconds(row.expected_s) if row.expected_s is not None else "-", Text(row.detail))
    console.print(table)
    counts = {status: sum(r.status == status for r in rows) for status in style}
    to_run = [r for r in rows if r.status in ("run", "unknown")]
    known = [r.expected_s for r in to_run if r.expected_s is not None]
    estimate = ""
    if known:
        total = sum(known) / max(1, plan.parallel)
        estimate = f"; about {fmt_seconds(total)} of work at --jobs {plan.parallel}" + (
            f" for the {len(known)} job(s) with earlier timings" if len(known) < len(to_run) else "")
    console.print(Text(
        f"{len(rows)} job(s) on {len(plan.datasets)} dataset(s): {counts['cached']} cached, {counts['run']} to run, "
        f"{counts['not applicable']} not applicable" + (f", {counts['unknown']} unknown" if counts["unknown"] else "")
        + estimate))


@cli.command(name="plan", cls=_SpaceSeparatedModels)
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="Runner config (YAML). Default: ./runner_config.yaml if present.")
@click.option("--models", multiple=True, metavar="NAME...", help="Models to plan (space- or comma-separated).")
@click.option("--input", "input_path", type=click.Path(path_type=Path), help="Input file. Overrides the config.")
@click.option("--output", "output_path", type=click.Path(path_type=Path), help="Output folder. Overrides the config.")
@click.option("--jobs", "-j", type=int, help="Jobs at the same time (for the time estimate).")
@click.option("--force", is_flag=True, help="Plan as 'run --force' would: nothing is kept.")
@click.option("--backend", "backend_name", type=click.Choice(["docker", "podman", "slurm"]), default=None,
              help="The backend whose images decide what is cached (default: the config's 'backend', else docker).")
def plan_command(config_path, models, input_path, output_path, jobs, force, backend_name) -> None:
    """Show the job grid of a run (datasets x models x grid points x seeds) and start nothing.

    Checks the whole config and every input as 'run' does (exit 2 on any problem),
    then lists every job: cached (an earlier valid result with the same key),
    to run (with the time earlier results took), or not applicable.
    """
    from multiverse import api

    plan = api.prepare(config_path, models=_split_models(models) or None, input=input_path,
                       output=output_path, jobs=jobs)
    _show_plan(plan, backend_name, force)


class _cancel_on_signals:
    """Ctrl-C, SIGTERM or SIGHUP (a closed terminal or SSH session) sets ``cancel``; running
    containers are then killed promptly."""

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel
        self.previous = {}

    def _handler(self, signum, frame) -> None:
        if not self.cancel.is_set():
            err_console.print(f"\n[yellow]{signal.Signals(signum).name}: stopping every running container...[/]")
        self.cancel.set()

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
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
    from multiverse.backends.docker import DockerBackend
    from multiverse.images.images import ImageBuilder, choose_base_image

    names = _split_models(models) or [*METHODS, *EXTRA_IMAGES]
    unknown = [name for name in names if name not in METHODS and name not in EXTRA_IMAGES]
    if unknown:
        known = ", ".join([*METHODS, *EXTRA_IMAGES])
        raise ConfigError(f"unknown model(s) or image(s): {', '.join(unknown)} (known: {known})")
    engine = DockerBackend.connect()
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


@cli.group(name="images")
def images_group() -> None:
    """Move built images without a registry: archives on shared storage, loaded into
    Docker or Podman (this machine's, or a cluster node's; see docs/CLUSTER.md)."""


def _image_tags(names) -> list[str]:
    from multiverse.catalog import IMAGES

    names = _split_models(names) or [*METHODS, *EXTRA_IMAGES]
    unknown = [n for n in names if n not in METHODS and n not in EXTRA_IMAGES and n not in IMAGES]
    if unknown:
        raise ConfigError(f"unknown model(s) or image(s): {', '.join(unknown)} (known: {', '.join([*METHODS, *EXTRA_IMAGES])})")
    tags = [image_of(METHODS[n]).tag if n in METHODS else IMAGES[n].tag for n in names]
    return list(dict.fromkeys(tags))  # controls share the PCA image


@images_group.command(name="save")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.argument("names", nargs=-1)
def images_save(folder, names) -> None:
    """Archive the images of NAMES (default: every method and the metrics image) from this
    machine's Docker engine into FOLDER (one .tar each and index.json). An archive of the
    same image id is kept; nothing is compressed."""
    from multiverse.backends import connect
    from multiverse.images.archive import save_images

    save_images(connect("docker"), _image_tags(names), folder, log=console.print)


@images_group.command(name="load")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("names", nargs=-1)
@click.option("--backend", "backend_name", type=click.Choice(["docker", "podman"]), default="docker", show_default=True,
              help="The engine to load into.")
def images_load(folder, names, backend_name) -> None:
    """Load the archived images of NAMES (default: all in FOLDER) that the engine lacks.
    The image ids stay the same, so results made on one engine are reused on the other."""
    from multiverse.backends import connect
    from multiverse.images.archive import load_images

    tags = _image_tags(names) if names else None
    load_images(connect(backend_name), folder, tags, log=console.print)


@cli.command(name="models")
@click.option("--params", "show_params", is_flag=True, help="Also list every parameter and its default.")
def list_models(show_params) -> None:
    """List the methods, their images and whether they are built."""
    from multiverse.backends import connect
    from multiverse.errors import EngineUnavailable

    try:
        engine = connect(timeout=10)
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


_TOY_OUTPUT = Path("data/synthetic.h5mu")


@cli.command()
@click.argument("output", type=click.Path(path_type=Path), required=False)
@click.option("--cells", type=click.IntRange(min=1), help="Number of cells. [toy: 600; fitted: the preset's, "
              "else the reference's]")
@click.option("--genes", type=click.IntRange(min=1), help="Fitted: RNA features (default: the preset's, else the reference's).")
@click.option("--peaks", type=click.IntRange(min=1), help="Fitted: ATAC peaks, paired with RNA (multiome).")
@click.option("--proteins", type=click.IntRange(min=1), help="Fitted: ADT proteins, paired with RNA (CITE-seq).")
@click.option("--preset", type=click.Choice(list(PRESETS)), help="Fitted: a named size ("
              + "; ".join(f"{name}: {p.describe()}" for name, p in PRESETS.items()) + "). Options given override it.")
@click.option("--reference", type=click.Path(path_type=Path), help="Fitted: the real paired .h5mu to fit (default: "
              + " or ".join(REFERENCE_FILES.values()) + " in $MULTIVERSE_REAL_DATA, else ../shared/data beside the checkout).")
@click.option("--chunk-size", type=click.IntRange(min=1), help=f"Fitted: cells sampled and written at a time "
              f"(default {DEFAULT_CHUNK}); memory grows with it, not with --cells.")
@click.option("--second", type=click.Choice(["atac", "adt"]), help="Toy: the modality paired with RNA. [default: atac]")
@click.option("--types", "n_types", type=click.IntRange(min=4), help="Toy: number of cell types. [default: 6]")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
def synth(output, cells, genes, peaks, proteins, preset, reference, chunk_size, second, n_types, seed) -> None:
    """Write a synthetic paired dataset with known cell types and batches to OUTPUT.

    \b
    Two generators. Without --genes/--peaks/--proteins/--preset/--reference/--chunk-size,
    the small toy dataset of the tests (OUTPUT default: data/synthetic.h5mu): types 0/1
    differ only in the second modality and types 2/3 only in RNA, so only an
    integrating method separates them all.
    With any of them, data of any size fitted to a real file (the BMMC starter sets by
    default): its cell types, donors, depths, sparsity and per-type profiles, streamed
    to disk chunk by chunk (OUTPUT default: data/PRESET.h5mu). For example:
      multiverse synth --preset multiome-50k
      multiverse synth big.h5mu --cells 20000 --genes 5000 --proteins 134

    Labels are in obs['cell_type'] and obs['batch']; raw counts in each
    modality's layers['counts'] (the fitted generator's .X holds the same counts).
    """
    fitted = any(v is not None for v in (genes, peaks, proteins, preset, reference, chunk_size))
    if not fitted:
        from multiverse.synthetic import write_synthetic

        cells, second, n_types = cells or 600, second or "atac", n_types or 6
        path = write_synthetic(output or _TOY_OUTPUT, n_cells=cells, second=second, n_types=n_types, seed=seed)
        console.print(f"wrote {path} ({cells} cells, rna + {second}, {n_types} cell types, 2 batches)")
        return
    _synth_fitted(output, cells, genes, peaks, proteins, preset, reference, chunk_size, second, n_types, seed)


def _synth_fitted(output, cells, genes, peaks, proteins, preset, reference, chunk_size, second, n_types, seed):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from multiverse.synth.generate import generate
    from multiverse.synth.presets import default_reference

    if second is not None or n_types is not None:
        raise ConfigError(
            "--second and --types belong to the toy dataset; the fitted generator takes its cell types from "
            "the reference and pairs RNA with --peaks (ATAC) or --proteins (ADT)"
        )
    if peaks is not None and proteins is not None:
        raise ConfigError("give --peaks (RNA + ATAC) or --proteins (RNA + ADT), not both")
    chosen = PRESETS[preset] if preset else None
    kind = "atac" if peaks is not None else "adt" if proteins is not None else None
    if chosen is not None and kind is not None and kind != chosen.second:
        raise ConfigError(f"--preset {preset} pairs RNA with {chosen.second.upper()}; "
                          f"--{'peaks' if kind == 'atac' else 'proteins'} does not fit it")
    kind = kind or (chosen.second if chosen else None)
    features = {"rna": genes if genes is not None else (chosen.genes if chosen else None)}
    if kind is not None:
        asked = peaks if kind == "atac" else proteins
        features[kind] = asked if asked is not None else (chosen.second_features if chosen else None)
    if output is None:
        if chosen is None:
            raise ConfigError("name the OUTPUT file (a default is given only with --preset)")
        output = Path("data") / f"{preset}.h5mu"
    reference = reference or default_reference(kind or "atac")
    if cells is None and chosen is not None:
        cells = chosen.cells
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    task = None

    def show(done: int, total: int) -> None:  # started at the first chunk: errors before it print alone
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task(f"writing {output.name} (fitted to {reference.name})", total=total)
        progress.update(task, completed=done)

    try:
        result = generate(output, cells, features, reference, seed=seed,
                          chunk_size=chunk_size or DEFAULT_CHUNK, on_progress=show)
    finally:
        if task is not None:
            progress.stop()
    mods = " + ".join(f"{name} {n:,}" for name, n in result.features.items())
    size = result.path.stat().st_size / 1e6
    console.print(
        f"wrote {result.path} ({result.n_cells:,} cells; {mods} features; fitted to {result.reference}; "
        f"{size:,.0f} MB in {result.seconds:.0f} s)"
    )


def _report(root: Path, backend, labels, options) -> None:
    from multiverse.report import make_report

    console.print(Text.assemble(("evaluating", "bold"), f" the results in {root} ..."))
    cancel = threading.Event()
    with _cancel_on_signals(cancel), console.status("scoring every embedding (scib-metrics) and drawing UMAPs") as status:
        def show(line: str) -> None:
            text = line.strip()
            if text:
                status.update(Text(f"evaluation: {text}"[:200]))
                if not console.is_terminal:
                    console.print(Text(f"evaluation | {text}"), soft_wrap=True)

        try:
            path = make_report(root, backend, labels, on_line=show, cancel=cancel, options=options)
        except MultiverseError:
            if cancel.is_set():
                err_console.print(Text("evaluation interrupted: the previous report, if any, is kept", style="yellow"))
                sys.exit(EXIT_INTERRUPTED)
            raise
    console.print(f"report: {path}")


@cli.command(name="report")
@click.argument("results", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--cell-type-key", help="obs column with cell types (default: the run's labels.cell_type).")
@click.option("--batch-key", help="obs column with batches (default: the run's labels.batch).")
@click.option("--metric-set", type=click.Choice(sorted(METRIC_SETS)), default=DEFAULT_METRIC_SET, show_default=True,
              help="leiden-asw: Leiden NMI/ARI, batch ASW and the rest (no unintegrated data needed); "
                   "benchmarker: scib-metrics 0.5.10 Benchmarker's defaults (KMeans NMI/ARI, BRAS, PCR comparison), "
                   "for totals set beside published scib-metrics tables.")
@click.option("--timeout", default="1h", show_default=True, help="Limit of each dataset's evaluation container.")
@click.option("--memory", default="8g", show_default=True, help="Memory limit of the evaluation container.")
@click.option("--cpus", type=float, default=None, help="CPUs of the evaluation container (default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the Leiden clusterings and UMAPs.")
def report_command(results, cell_type_key, batch_key, metric_set, timeout, memory, cpus, seed) -> None:
    """Score every result in RESULTS and write one self-contained HTML report.

    Runs the evaluation image (scib-metrics) against the run's labels: bio
    conservation and batch correction metrics of the chosen set, plus a UMAP of
    every embedding. Writes RESULTS/report/report.html, metrics.csv and
    metrics.json. Cells without a label are left out of the metrics that need
    it; a metric that cannot be computed is skipped, and the report says why.
    """
    from multiverse.backends import connect
    from multiverse.config import parse_duration, parse_size
    from multiverse.report.evaluate import EvaluationOptions

    try:
        options = EvaluationOptions(timeout_s=parse_duration(timeout), memory_bytes=parse_size(memory), cpus=cpus,
                                    seed=seed, metric_set=metric_set)
    except ValueError as exc:
        raise ConfigError(f"report: {exc}") from None
    labels = {k: v for k, v in (("cell_type", cell_type_key), ("batch", batch_key)) if v}
    _report(results, connect(), labels, options)


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


@cli.command(name="check-image")
@click.argument("image")
@click.option("--params", "params_json", default="{}", show_default=True,
              help="Parameters to give the method, as a JSON object (the seed is added).")
@click.option("--timeout", default="10m", show_default=True, help="Limit of each run of the image (600, 10m, 1h).")
@click.option("--memory", default="4g", show_default=True, help="Memory limit of each run (4g, 512m).")
@click.option("--backend", "backend_name", type=click.Choice(["docker", "podman"]), default="docker", show_default=True)
def check_image_command(image, params_json, timeout, memory, backend_name) -> None:
    """Check that IMAGE follows the method container contract (docs/MODEL_CONTAINERS.md).

    Runs it in the sandbox on a small bundled fixture (three times) and prints
    each check: it runs with a read-only input and no network, writes the three
    files, keeps the cells in order, echoes its parameters, gives the same
    embedding for the same seed, and says "not applicable" (exit 3) rather than
    crashing on an input without raw counts. Exits 0 when every check passes.
    """
    import json

    from multiverse.backends import connect
    from multiverse.check_image import RESOURCES, check_image
    from multiverse.config import parse_duration, parse_size

    try:
        params = json.loads(params_json)
        if not isinstance(params, dict):
            raise ValueError("not a JSON object")
        limits = dataclasses.replace(RESOURCES, timeout_s=parse_duration(timeout), memory_bytes=parse_size(memory))
    except ValueError as exc:
        raise ConfigError(f"check-image: {exc}") from None
    report = check_image(connect(backend_name), image, params, limits, progress=lambda text: console.print(Text(text)))
    table = Table(title=f"contract checks of {image}", title_justify="left")
    for column in ("check", "result", "detail"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        table.add_row(Text(check.name), Text("pass", style="green") if check.passed else Text("FAIL", style="red"),
                      Text(check.detail))
    console.print(table)
    if not report.passed:
        failed = sum(not c.passed for c in report.checks)
        err_console.print(Text(f"{image} does not follow the contract: {failed} check(s) failed", style="red"))
        sys.exit(1)
    console.print(Text(f"{image} follows the contract", style="green"))


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
