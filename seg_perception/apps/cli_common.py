"""What every `seg-perception` process shares: the error boundary, the logging setup and the
option groups more than one parser takes.

`seg-perception demo` runs the demo in a child process (it drives ROS 2 nodes, and the command
line sits below the ROS layer); the child parses the demo's options with :func:`add_demo_options`
and reports errors through :func:`run_guarded`, so both processes speak with one voice. This
module imports nothing heavy and nothing that builds or exports models, so the ROS tools may
import it.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from seg_perception.errors import SegPerceptionError

PROG = "seg-perception"
_N = TypeVar("_N", int, float)


def run_guarded(command: Callable[[], int]) -> int:
    """Run ``command`` behind the error boundary: our errors become one line on stderr and exit
    code 2, Ctrl-C exit code 130; never a traceback."""
    try:
        return int(command())
    except SegPerceptionError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``<prog>: error: <what> (see <prog> --help)``)
    and exit code 2, like the errors of the error boundary; sub-parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer > 0 (counts, sizes in pixels)."""
    value = _number(text, int, "an integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be an integer > 0, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (counts where 0 means none or no limit)."""
    value = _number(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (rates in Hz, factors)."""
    value = _number(text, float, "a number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (durations where 0 means none)."""
    value = _number(text, float, "a number")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _number(text: str, kind: Callable[[str], _N], what: str) -> _N:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")


def add_param_option(p: argparse.ArgumentParser, help: str = "override one parameter") -> None:
    """``-p/--param KEY=VALUE``, repeatable: the parameter overrides every command takes."""
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help=help)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--config and -p of the commands that run one model (its config/<model>.yaml)."""
    p.add_argument(
        "--config",
        help="parameter file (ROS format) overriding the model's config/semantic.yaml or config/instance.yaml",
    )
    add_param_option(p)


def add_demo_options(p: argparse.ArgumentParser) -> None:
    """The options of `seg-perception demo`, parsed by the command and again by the demo process."""
    p.add_argument("--out", default="out/demo")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--rate", type=float, default=0.2, help="playback rate (fraction of real time) the CPU keeps up with"
    )
    p.add_argument("--config", help="parameter file (ROS format) overriding config/perception.yaml")
    add_param_option(p)


def demo_argv(args: argparse.Namespace) -> list[str]:
    """The demo options of ``args`` as a command line for the demo process (``--opt=value``, so
    values that start with a dash stay values)."""
    argv = [f"--out={args.out}", f"--frames={args.frames}", f"--seed={args.seed}", f"--rate={args.rate!r}"]
    if args.config is not None:
        argv.append(f"--config={args.config}")
    argv += [f"--param={pair}" for pair in args.param or ()]
    return argv
