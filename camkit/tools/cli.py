"""The ``camkit`` command: ``explain``, ``layers`` and ``plugins``.

Exit status: 0 when every input was explained, 1 when some inputs failed (the rest were
done), 2 for a usage error (unknown method, missing file, bad option) or an output that
cannot be written (files that exist without ``--overwrite``, a full disk) with a message.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from camkit.capture import explanation_mode
from camkit.compat.checkpoints import load_classifier, load_factory_model
from camkit.compat.checkpoints.factory import declared_class_names, is_factory_spec
from camkit.errors import CamkitError, ImageSkippedWarning
from camkit.explainer import Explainer
from camkit.layers.structural import trace_calls
from camkit.pipeline.fusion import FUSIONS
from camkit.plugins.manager import (
    list_plugins,
    list_registrations,
    list_renderers,
    resolve_method,
)
from camkit.preprocess import DEFAULT_MAX_PIXELS, RESIZE_MODES, DataConfig
from camkit.tools.batch import (
    ImageJob,
    check_outputs,
    explain_files,
    find_images,
    method_slug,
    plan_outputs,
)
from camkit.tools.memory import keep_freed_memory

__all__ = ["main"]

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line or the files it names (exit status 2)."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _pixel_limit(text: str) -> int | None:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 for no limit), got {value}")
    return value or None


def _workers(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 for no worker threads), got {value}")
    return value


def _threads(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a count >= 1, got {text!r}")
    return value


def _alpha(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value}")
    return value


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        required=True,
        metavar="NAME|SPEC",
        help="backbone name: timm or torchvision names, or the seed's (mobilenetv2, "
        "xception); or your own model: package.module:factory or path/to/file.py:factory, "
        "a callable called with no arguments that returns the nn.Module",
    )
    group.add_argument(
        "--weights",
        metavar="FILE",
        help="checkpoint (state_dict) to load, on top of a factory's model too",
    )
    group.add_argument("--classes", metavar="FILE", help="class file, one class per line")
    group.add_argument(
        "--input-size",
        nargs=2,
        type=_positive_int,
        metavar=("H", "W"),
        help="model input size (default: the model's own config, else 224 224)",
    )
    group.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=None,
        help="fit images by stretching (default), centre crop, or letterbox",
    )
    group.add_argument("--letterbox", action="store_true", help="same as --resize letterbox")
    group.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")


def _colormap_option() -> dict[str, Any]:
    """``add_argument`` keywords of ``--colormap``: the registered renderers are the choices."""
    try:
        choices: list[str] | None = list_renderers()
    except CamkitError:  # a plugin conflict: reported when the explainer creates the renderer
        choices = None
    return {
        "default": "jet",
        "choices": choices,
        "metavar": "NAME",
        "help": "overlay colormap, a registered renderer (default jet)"
        + (f": {', '.join(choices)}" if choices else ""),
    }


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camkit", description="Class-activation heatmaps for PyTorch image classifiers."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    explain = commands.add_parser(
        "explain", help="explain image files and folders", description="Explain images."
    )
    explain.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    _add_model_options(explain)
    cam = explain.add_argument_group("explanation")
    cam.add_argument(
        "--method",
        default="gradcam++",
        help="CAM method (default gradcam++); overlays are named <stem>_<method>.jpg, with "
        "'+' written 'p' (gradcam++ -> gradcampp)",
    )
    cam.add_argument(
        "--layer",
        action="append",
        metavar="NAME",
        help="target layer (default: automatic); repeat to fuse several layers",
    )
    cam.add_argument(
        "--fusion",
        default="mean",
        choices=sorted(FUSIONS),
        help="how several layers' maps are combined (default mean)",
    )
    cam.add_argument("--target", type=int, metavar="N", help="class to explain (default: pred)")
    cam.add_argument(
        "--top",
        type=_positive_int,
        metavar="K",
        help="explain each image's K best classes from one forward: one overlay and one "
        "report row per class",
    )
    cam.add_argument("--alpha", type=_alpha, default=0.5, help="heatmap weight (default 0.5)")
    cam.add_argument("--colormap", **_colormap_option())
    cam.add_argument(
        "--aug-smooth",
        action="store_true",
        help="test-time augmentation: average the maps of flipped and brightened copies",
    )
    cam.add_argument(
        "--eigen-smooth",
        action="store_true",
        help="first principal component of the weighted activations (channel-weighting "
        "methods only)",
    )
    out = explain.add_argument_group("output")
    out.add_argument("--out", default="cam_output", metavar="DIR", help="output folder")
    out.add_argument("--report", action="store_true", help="write DIR/gradcam_report.csv")
    out.add_argument(
        "--html",
        action="store_true",
        help="write DIR/index.html: a page of thumbnails to sort, filter and open, that works "
        "offline (thumbnails in DIR/thumbs)",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace overlays and a report that exist (default: stop before any work)",
    )
    out.add_argument("--batch-size", type=_positive_int, default=8, metavar="N")
    out.add_argument(
        "--max-pixels",
        type=_pixel_limit,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"largest image (width x height) to decode; bigger files become error rows "
        f"(default {DEFAULT_MAX_PIXELS}, PIL's own limit; 0 for no limit)",
    )
    out.add_argument(
        "--no-recursive",
        action="store_true",
        help="search only the folders given, not their subfolders (by default subfolders "
        "are searched, leaving out --out)",
    )
    out.add_argument("--recursive", action="store_true", help=argparse.SUPPRESS)  # old default
    out.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    engine = explain.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (default): this process; ray: a pool of Ray actors, on this machine or "
        "a Ray cluster (pip install 'camkit[ray]'; see docs/cluster.md)",
    )
    engine.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="local engine: threads that decode images while the model runs, and as many "
        "that write overlays (default: half the CPUs, 1 to 4; 0: none, one step after the "
        "other); --engine ray: the number of actors (default: one per GPU of the cluster, "
        "else one per two CPUs)",
    )
    engine.add_argument(
        "--threads",
        type=_threads,
        default="auto",
        metavar="auto|N",
        help="local engine on the CPU: the model's threads (default: auto, timed on the "
        "first batches: torch's count, or one core fewer per worker, whichever is faster; "
        "give N for bit-identical reruns)",
    )
    engine.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --engine ray, the Ray cluster to join (host:port of its head, or 'auto'); "
        "default: start a local Ray for this run",
    )

    layers = commands.add_parser(
        "layers",
        help="list a model's candidate layers",
        description="List the layers that produce spatial maps, and the one camkit picks.",
    )
    _add_model_options(layers)

    demo = commands.add_parser(
        "demo",
        help="explain demo scenes with the shipped model and write an HTML page",
        description="Explain a handful of demo scenes with camkit's shipped demo model, "
        "Grad-CAM++ and Grad-CAM side by side, and write overlays, a CSV and index.html.",
    )
    demo.add_argument("--out", default="camkit-demo", metavar="DIR", help="output folder")
    demo.add_argument(
        "--method",
        action="append",
        metavar="NAME",
        help="a CAM method; repeat for several (default: gradcam++ and gradcam)",
    )
    demo.add_argument("--colormap", **_colormap_option())
    demo.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files of an earlier demo in DIR (default: stop before any work)",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="score the methods on held-out demo scenes (pointing game, Average Drop, ...)",
        description="Explanation-quality metrics of CAM methods on held-out demo scenes.",
    )
    evaluate.add_argument("--scenes", type=_positive_int, default=200, metavar="N")
    evaluate.add_argument(
        "--steps",
        type=_positive_int,
        default=50,
        metavar="N",
        help="deletion/insertion steps (default 50)",
    )
    evaluate.add_argument(
        "--method",
        action="append",
        metavar="NAME",
        help="a CAM method; repeat for several (default: every deterministic method)",
    )

    commands.add_parser(
        "plugins",
        help="list registered methods, renderers, resolvers and architectures",
        description="List everything registered, with the distribution that provided it.",
    )
    return parser


def _load_model(args: argparse.Namespace) -> tuple[nn.Module, list[str] | None]:
    """The model of ``--model`` with ``--weights`` on top, and its class names: the class
    file's, else the ones the model declares, else ``None`` (never made up from indices)."""
    if args.weights and not Path(args.weights).is_file():
        raise UsageError(f"weights file not found: {args.weights!r}")
    if args.classes and not Path(args.classes).is_file():
        raise UsageError(f"class file not found: {args.classes!r}")
    if is_factory_spec(args.model):
        return load_factory_model(args.model, args.weights, args.classes)
    # without weights or a class file, build the libraries' default 1000-class head
    default_classes = 1000 if not args.weights and not args.classes else None
    model, names = load_classifier(args.model, args.weights, args.classes, default_classes)
    return model, names if args.classes else declared_class_names(model)


def _data_config(args: argparse.Namespace, model: nn.Module) -> DataConfig:
    """The model's preprocessing with ``--input-size`` and ``--resize`` on top."""
    config = DataConfig.from_model(model)
    resize = "letterbox" if args.letterbox else (args.resize or config.resize)
    size = tuple(args.input_size) if args.input_size else config.input_size
    return DataConfig(size, config.mean, config.std, config.interpolation, resize)


def _explainer(args: argparse.Namespace, **kwargs: object) -> Explainer:
    model, names = _load_model(args)
    return Explainer(
        model,
        device=args.device,
        data_config=_data_config(args, model),
        class_names=names,
        **kwargs,  # type: ignore[arg-type]
    )


def _explain_options(args: argparse.Namespace) -> dict[str, object]:
    """The Explainer options of ``camkit explain``'s explanation flags, for either engine."""
    return {
        "method": args.method,
        "layer": args.layer,
        "fusion": args.fusion,
        "renderer": args.colormap,
        "aug_smooth": args.aug_smooth,
        "eigen_smooth": args.eigen_smooth,
        "max_pixels": args.max_pixels,
    }


def _warn_random_weights(args: argparse.Namespace) -> None:
    if not args.weights and not is_factory_spec(args.model):
        print(
            f"camkit explain: warning: no --weights, so {args.model} has random weights and "
            "its predictions and maps are meaningless; pass --weights FILE (your trained "
            "checkpoint), or --model path/to/file.py:factory for a model that loads its own",
            file=sys.stderr,
        )


def _run_explain(args: argparse.Namespace) -> int:
    images = find_images(
        args.paths, recursive=not args.no_recursive, exclude=[args.out], allow_empty=False
    )
    # the outputs are checked before the model is built: files that exist stop the run
    method = resolve_method(args.method)
    slug = method_slug(method.name or type(method).__name__)
    jobs = plan_outputs(images, args.out, suffix=f"_{slug}")
    report = Path(args.out) / "gradcam_report.csv" if args.report else None
    pages: list[Path] = []
    if args.html:  # the page's module is imported only for it
        from camkit.tools.html_report import HTML_INDEX, write_html_report

        pages.append(Path(args.out) / HTML_INDEX)
    if args.engine == "ray":
        if args.workers == 0:
            raise UsageError(
                "--engine ray needs at least one actor: --workers N with N >= 1, or no "
                "--workers for one per GPU of the cluster, else one per two CPUs"
            )
        if args.html:
            raise UsageError(
                "--html works with the local engine only (its thumbnails are drawn from the "
                "maps in memory); drop --html, or --engine ray"
            )
        pages = [Path(args.out) / RAY_PARQUET] if args.report else []
    check_outputs(
        jobs, report, by_class=args.top is not None, overwrite=args.overwrite, extra=pages
    )
    if args.engine == "ray":
        return _run_explain_ray(args, jobs, report)
    keep_freed_memory()  # this process's own malloc settings: see camkit.tools.memory
    explainer = _explainer(args, **_explain_options(args))
    _warn_random_weights(args)
    failed = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageSkippedWarning)  # reported below instead
        results = explain_files(
            explainer,
            jobs,
            target=args.target,
            top=args.top,
            alpha=args.alpha,
            batch_size=args.batch_size,
            report=report,
            progress=False if args.no_progress else None,
            overwrite=args.overwrite,
            workers=args.workers,
            threads=args.threads,
        )
    for result in results:
        e = result.explanation
        if e is None:
            failed += 1
            print(f"camkit: failed {result.image}: {result.error}", file=sys.stderr)
            continue
        name = f" ({e.pred_name})" if e.pred_name else ""
        target = f" target={e.target} score={e.target_score:.3f}" if args.top else ""
        print(
            f"{result.image} -> {result.heatmap}  pred={e.pred_class}{name} "
            f"conf={e.confidence:.3f}{target}"
        )
    count = len({result.image for result in results})
    print(
        f"camkit: explained {count - failed} of {count} images"
        + (f", {args.top} classes each," if args.top else "")
        + f" at layer {explainer.layer!r} with {explainer.method_name}"
        + f"; preprocessing: {explainer.data_config.describe()}"
        + (f"; report: {report}" if report else ""),
        file=sys.stderr,
    )
    if args.html:
        page = write_html_report(
            results,
            args.out,
            method=explainer.method_name,
            colormap=explainer.renderer,
            alpha=args.alpha,
            class_names=explainer.class_names,
            details={"model": args.model, "weights": args.weights or "none (random init)"},
            overwrite=args.overwrite,
        )
        print(f"camkit explain: open {page.resolve().as_uri()}", file=sys.stderr)
    return EXIT_PARTIAL if failed else EXIT_OK


RAY_PARQUET = "gradcam_report.parquet"
"""The Ray engine's Parquet report (``--report``), next to the CSV: every column of
:data:`camkit.ray.COLUMNS`, the maps included."""


def _absolute(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the model's files as absolute paths, for workers in other folders."""
    absolute = argparse.Namespace(**vars(args))
    for name in ("weights", "classes"):
        if getattr(args, name):
            setattr(absolute, name, os.path.abspath(getattr(args, name)))
    source, colon, attribute = args.model.rpartition(":")
    if is_factory_spec(args.model) and source.endswith(".py"):
        absolute.model = f"{os.path.abspath(source)}{colon}{attribute}"
    return absolute


def _ray_model(args: argparse.Namespace) -> nn.Module:
    """The model of ``--model`` and ``--weights``, built on each Ray worker."""
    return _load_model(args)[0]


def _run_explain_ray(
    args: argparse.Namespace, jobs: Sequence[ImageJob], report: Path | None
) -> int:
    """``camkit explain --engine ray``: the same overlays and CSV report as the local
    engine (and the Parquet report), explained by a pool of Ray actors."""
    from camkit import ray as camkit_ray

    model, names = _load_model(args)
    _warn_random_weights(args)
    config = _data_config(args, model)
    options = {
        **_explain_options(args),
        "device": args.device,
        "data_config": config,
        "class_names": names,
    }
    preprocessing = config.describe()
    started = camkit_ray.start_ray(args.ray_address)
    import ray
    import ray.data

    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the report in input order
        context.enable_progress_bars = not args.no_progress and sys.stderr.isatty()
        workers, gpus = camkit_ray.cluster_workers(use_gpus=args.device != "cpu")
        workers = args.workers or workers
        dataset = ray.data.from_items([{"path": camkit_ray.row_name(job.source)} for job in jobs])
        results = camkit_ray.explain_dataset(
            dataset,
            functools.partial(_ray_model, _absolute(args)),
            weights=model.state_dict(),
            explainer_options=options,
            plan=jobs,
            overwrite=args.overwrite,
            target=args.target,
            top=args.top,
            alpha=args.alpha,
            maps=args.report,
            batch_size=args.batch_size,
            concurrency=workers,
            num_gpus=gpus,
        )

        def show(row: Mapping[str, Any]) -> None:
            if row["error"] is not None:
                print(f"camkit: failed {row['path']}: {row['error']}", file=sys.stderr)
                return
            name = f" ({row['pred_name']})" if row["pred_name"] else ""
            target = f" target={row['target']} score={row['target_score']:.3f}" if args.top else ""
            print(
                f"{row['path']} -> {row['overlay']}  pred={row['pred_class']}{name} "
                f"conf={row['confidence']:.3f}{target}"
            )

        summary = camkit_ray.write_report(
            results,
            report,
            Path(args.out) / RAY_PARQUET if report is not None else None,
            preprocessing=preprocessing,
            overwrite=args.overwrite,
            on_row=show,
        )
    finally:
        if started:
            ray.shutdown()
    print(
        f"camkit: explained {summary.images - summary.failed} of {summary.images} images"
        + (f", {args.top} classes each," if args.top else "")
        + (f" at layer {summary.layer!r} with {summary.method}" if summary.layer else "")
        + f" on {workers} Ray worker(s); preprocessing: {preprocessing}"
        + (f"; report: {report}" if report else ""),
        file=sys.stderr,
    )
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def _run_layers(args: argparse.Namespace) -> int:
    explainer = _explainer(args)
    height, width = explainer.data_config.input_size
    example = torch.zeros(1, 3, height, width, device=explainer.device)
    chosen = explainer.resolve_layer(example)
    with explanation_mode(explainer.model):
        calls = trace_calls(explainer.model, example)
    last: dict[str, tuple[str, tuple[int, ...] | None, bool]] = {}
    for call in calls:
        last[call.name] = (call.kind, call.shape, call.candidate)
    print(f"{'layer':<40} {'type':<24} output shape")
    for name, (kind, shape, candidate) in last.items():
        if not candidate and name != chosen:
            continue
        mark = "  <- camkit's choice" if name == chosen else ""
        print(f"{name:<40} {kind:<24} {tuple(shape) if shape else '-'}{mark}")
    print(f"camkit picks {chosen!r} for {args.model}")
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    from camkit.demo.report import run_demo

    methods = args.method or ("gradcam++", "gradcam")
    page = run_demo(args.out, methods=methods, renderer=args.colormap, overwrite=args.overwrite)
    print(f"camkit demo: open {page.resolve().as_uri()}")
    return EXIT_OK


def _run_evaluate(args: argparse.Namespace) -> int:
    from camkit.demo.evaluate import evaluate, format_table

    def progress(line: str) -> None:
        print(f"camkit evaluate: scoring {line}", file=sys.stderr, flush=True)

    results = evaluate(args.scenes, args.method, args.steps, progress=progress)
    print(format_table(results, args.scenes))
    return EXIT_OK


def _run_plugins(_: argparse.Namespace) -> int:
    print(f"{'plugin':<20} {'distribution':<20} hooks")
    for info in list_plugins():
        hooks = ", ".join(hook.removeprefix("camkit_") for hook in info.hooks)
        print(f"{info.name:<20} {info.distribution or '-':<20} {hooks}")
    print()
    entries = list_registrations()
    print(f"{'kind':<13} {'name':<28} {'plugin':<20} distribution")
    clashes: dict[tuple[str, str], list[str]] = {}
    for e in entries:
        mark = "  CONFLICT" if e.conflict else ""
        print(f"{e.kind:<13} {e.name:<28} {e.plugin:<20} {e.distribution or '-'}{mark}")
        if e.conflict:
            clashes.setdefault((e.kind, e.name), []).append(
                f"plugin {e.plugin!r} (distribution {e.distribution!r})"
            )
    for (kind, name), providers in clashes.items():
        print(
            f"\nCONFLICT: {kind} name {name!r} is registered by {' and by '.join(providers)}. "
            f"Using it raises PluginConflictError; uninstall one of them, or pass the {kind} "
            "class itself. Everything else works."
        )
    return EXIT_OK


@contextlib.contextmanager
def _safe_streams() -> Iterator[None]:
    """Let stdout and stderr print any text: characters their encoding cannot take (a file
    name that is not UTF-8 holds ``\\udcXX`` escapes) are printed as backslash escapes
    instead of raising ``UnicodeEncodeError``."""
    changed = []
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")
            changed.append(stream)
    try:
        yield
    finally:
        for stream in changed:
            with contextlib.suppress(ValueError):  # closed meanwhile
                stream.reconfigure(errors="strict")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``camkit`` command; returns the exit status."""
    with _safe_streams():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "explain": _run_explain,
        "layers": _run_layers,
        "plugins": _run_plugins,
        "demo": _run_demo,
        "evaluate": _run_evaluate,
    }
    try:
        return handlers[args.command](args)
    except (UsageError, CamkitError) as error:
        print(f"camkit {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed stream
        return EXIT_OK
    except OSError as error:  # the file system refused something: a message, not a traceback
        print(f"camkit {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
