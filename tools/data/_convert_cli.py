"""Shared bits of the ``tools/data/convert_*.py`` command-line tools."""
import os.path as osp
import sys
import warnings

# harmless mmcv-lite notice printed when mmaction is imported
warnings.filterwarnings('ignore', message='Fail to import ``MultiScale')

_REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def ensure_importable() -> None:
    """Let the tools run from a checkout without installing the package."""
    try:
        import mmsemiprune.datasets.converters  # noqa: F401
    except ImportError:
        sys.path.insert(0, _REPO)


def add_common(parser) -> None:
    parser.add_argument('input', help='folder with the raw dataset files '
                        '(upstream layout; read only)')
    parser.add_argument('output', help='output pickle path, e.g. '
                        'data/<name>/<name>.pkl (must end with .pkl)')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress counter on stderr')


def run(convert, args, **kwargs) -> int:
    """Call ``convert(input, output, ...)``, print the summary, exit code."""
    from mmsemiprune.datasets.converters import ConversionError
    try:
        report = convert(args.input, args.output,
                         progress=not args.quiet, **kwargs)
    except ConversionError as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    print(report.summary(), file=sys.stderr)
    print(f'wrote {args.output}', file=sys.stderr)
    return 0
