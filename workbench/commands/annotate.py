"""`workbench annotate`: import and export labels, measure agreement (the widget's batch and checking side)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from workbench.annotate.agreement import agreement
from workbench.annotate.derive import current_labels
from workbench.annotate.events import LabelStore
from workbench.annotate.io import EXPORT_FORMATS, export_labels, import_labels
from workbench.annotate.queue import ORDERS
from workbench.annotate.serve import LOOPBACK, AppSettings, ServeConfig, serve
from workbench.annotate.targets import check_clustering
from workbench.errors import UserError
from workbench.workspace import Workspace

NAME = "annotate"
HELP = "Import, export and check expert labels of clusters and images (WS/state/annotations.sqlite)."


def _common(parser: argparse.ArgumentParser, clustering: bool = True) -> None:
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    if clustering:
        parser.add_argument("--clustering", required=True, metavar="NAME", help="the clustering the labels are for")
    parser.add_argument("--taxonomy", metavar="NAME|FILE", help="taxonomy (default: the workspace's, else biomedica)")


def _add_import(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--annotator", required=True, metavar="WHO", help="whose decisions these are")
    parser.add_argument(
        "--id-map", type=Path, metavar="CSV", help="BIOMEDICA ids -> ours: a CSV with columns source_id,cluster_id"
    )
    parser.add_argument(
        "--external", action="store_true", help="the clustering was fitted elsewhere: do not check its cluster ids"
    )
    parser.add_argument(
        "file",
        type=Path,
        metavar="FILE",
        help="BIOMEDICA's cluster_labels.json format, or a CSV with columns target,global,local,panel_type,"
        "panel_subtype (target: cluster id or image key; several values '|'-separated)",
    )


def _run_import(args: argparse.Namespace, store: LabelStore) -> int:
    report = import_labels(
        store, args.file, args.clustering, args.annotator, id_map=args.id_map, external=args.external
    )
    print(report.describe())
    return 0


def _add_export(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="biomedica JSON or events Parquet")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="file to write")


def _run_export(args: argparse.Namespace, store: LabelStore) -> int:
    check_clustering(store, args.clustering)
    print(export_labels(store, args.clustering, args.format, args.out))
    return 0


def _add_agreement(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _run_agreement(args: argparse.Namespace, store: LabelStore) -> int:
    check_clustering(store, args.clustering)
    report = agreement(current_labels(store, args.clustering))
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if args.json else report.describe())
    return 0


def _add_serve(parser: argparse.ArgumentParser) -> None:
    _common(parser, clustering=False)
    parser.add_argument("--clustering", default="", metavar="NAME", help="clustering to label (default: the current)")
    parser.add_argument("--annotator", default="", metavar="WHO", help="who labels (default: the app asks, once)")
    parser.add_argument("--order", default="largest", choices=ORDERS, help="queue: largest clusters or most uncertain")
    parser.add_argument("--embeddings", default="", metavar="NAME", help="embedding set for suggestions (optional)")
    parser.add_argument("--ip", default=LOOPBACK, help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--no-token", action="store_true", help="no token in the URL (loopback addresses only)")


def _run_serve(args: argparse.Namespace, _store: LabelStore) -> int:
    settings = AppSettings(
        str(args.workspace), args.clustering, args.annotator, args.order, args.embeddings, args.taxonomy or ""
    )
    return serve(ServeConfig(settings, args.ip, args.port, not args.no_token))


# action -> (help, add_arguments, run). `serve` (the Voila app, issue 10 item 8) registers here too.
SUBCOMMANDS: dict[str, tuple[str, Callable[..., None], Callable[..., int]]] = {
    "import": ("append decisions from a label file (BIOMEDICA JSON or CSV)", _add_import, _run_import),
    "export": ("write the derived labels (biomedica) or the event log (events)", _add_export, _run_export),
    "agreement": ("Cohen's and Fleiss' kappa, overall and per global concept", _add_agreement, _run_agreement),
    "serve": ("the annotation widget as a Voila app; prints its URL (127.0.0.1 and a token)", _add_serve, _run_serve),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Every decision is an event in WS/state/annotations.sqlite (nothing is overwritten; undo is a new event); "
        "the current label of a cluster or image is derived (agreement, adjudication, per-image overrides) and "
        "reaches catalog filters (--concept, --panel-type) at once. Exit 2: bad input (unknown concept, cluster "
        "or key, malformed file), nothing stored."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, (text, add, _) in SUBCOMMANDS.items():
        add(actions.add_parser(action, help=text, description=text))


def run(args: argparse.Namespace) -> int:
    workspace = Workspace.at(args.workspace)
    if not workspace.root.is_dir():
        raise UserError(f"no workspace at {workspace.root}")
    store = LabelStore(workspace, getattr(args, "taxonomy", None))
    return SUBCOMMANDS[args.action][2](args, store)
