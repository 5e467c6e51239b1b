"""Command-line flags for a `FigureFilter`, shared by `workbench subset` and `workbench catalog`."""

from __future__ import annotations

import argparse

from workbench.catalog.filters import TEXT_MODES, FigureFilter
from workbench.commands._argtypes import non_negative_int
from workbench.errors import UserError
from workbench.licenses import LICENSE_GROUPS


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filter (fields are ANDed; a repeated flag matches any of its values)")
    group.add_argument(
        "--license-group",
        action="append",
        choices=LICENSE_GROUPS,
        dest="license_groups",
        help="licence group (repeatable)",
    )
    group.add_argument("--year-from", type=non_negative_int, metavar="YEAR", help="publication year, inclusive")
    group.add_argument("--year-to", type=non_negative_int, metavar="YEAR", help="publication year, inclusive")
    group.add_argument("--date-from", metavar="YYYY-MM-DD", help="publication date, inclusive")
    group.add_argument("--date-to", metavar="YYYY-MM-DD", help="publication date, inclusive")
    group.add_argument("--journal", action="append", dest="journals", metavar="NAME", help="journal (repeatable)")
    group.add_argument(
        "--article-type",
        action="append",
        dest="article_types",
        metavar="TYPE",
        help="article type, e.g. research-article (repeatable)",
    )
    group.add_argument(
        "--mesh", action="append", dest="mesh_terms", metavar="TERM", help="MeSH descriptor, any case (repeatable)"
    )
    group.add_argument(
        "--keyword", action="append", dest="keywords", metavar="WORD", help="author keyword, any case (repeatable)"
    )
    group.add_argument(
        "--panel-type",
        action="append",
        dest="panel_types",
        metavar="TYPE",
        help="panel type (single, multiple) or subtype of the current annotation label (repeatable)",
    )
    group.add_argument(
        "--concept",
        action="append",
        dest="concepts",
        metavar="LABEL",
        help="global or local concept of the current annotation label, any case (repeatable)",
    )
    group.add_argument(
        "--cluster",
        action="append",
        type=non_negative_int,
        dest="clusters",
        metavar="N",
        help="cluster id in the current clustering (`workbench cluster`; repeatable)",
    )
    group.add_argument("--min-width", type=non_negative_int, metavar="PX")
    group.add_argument("--max-width", type=non_negative_int, metavar="PX")
    group.add_argument("--min-height", type=non_negative_int, metavar="PX")
    group.add_argument("--max-height", type=non_negative_int, metavar="PX")
    inline = group.add_mutually_exclusive_group()
    inline.add_argument(
        "--has-inline-references",
        action="store_const",
        const=True,
        dest="has_inline_references",
        help="only figures cited in the text",
    )
    inline.add_argument(
        "--no-inline-references",
        action="store_const",
        const=False,
        dest="has_inline_references",
        help="only figures never cited in the text",
    )
    group.add_argument("--exclude-duplicates", action="store_true", help="leave out exact duplicate images")
    group.add_argument(
        "--text",
        default="",
        metavar="QUERY",
        help="full-text (BM25) query over captions, in-line references and titles",
    )
    group.add_argument(
        "--text-mode",
        choices=TEXT_MODES,
        default="any",
        help="how --text matches: any word (default), all words, or the exact phrase",
    )
    group.add_argument(
        "--where",
        default="",
        metavar="SQL",
        help="raw SQL expression over the columns of figures, e.g. \"license_group = 'commercial'\"",
    )


def filter_from_args(args: argparse.Namespace) -> FigureFilter:
    """Build the filter from parsed flags (UserError with a clear message on bad values)."""
    try:
        return _figure_filter(args)
    except UserError:
        raise
    except ValueError as error:  # FigureFilter checks the values it is given: all of them came from flags
        raise UserError(str(error)) from error


def _figure_filter(args: argparse.Namespace) -> FigureFilter:
    return FigureFilter(
        license_groups=tuple(args.license_groups or ()),
        year_from=args.year_from,
        year_to=args.year_to,
        date_from=args.date_from,
        date_to=args.date_to,
        journals=tuple(args.journals or ()),
        article_types=tuple(args.article_types or ()),
        mesh_terms=tuple(args.mesh_terms or ()),
        keywords=tuple(args.keywords or ()),
        panel_types=tuple(args.panel_types or ()),
        concepts=tuple(args.concepts or ()),
        clusters=tuple(getattr(args, "clusters", None) or ()),
        min_width=args.min_width,
        max_width=args.max_width,
        min_height=args.min_height,
        max_height=args.max_height,
        has_inline_references=args.has_inline_references,
        exclude_duplicates=args.exclude_duplicates,
        text=args.text,
        text_mode=getattr(args, "text_mode", "any"),
        where=args.where,
    )


def filter_given(args: argparse.Namespace) -> bool:
    """Whether any filter flag was given (used to refuse mixing them with --from-manifest)."""
    return filter_from_args(args) != FigureFilter()
