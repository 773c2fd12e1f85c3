"""The ``flairseg`` command, ``python -m flairseg`` and ``torchrun ... -m flairseg train ...``: the command line."""

import contextlib
import signal
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold a Ctrl-C back until the block ends: one arriving while Python imports a module may be raised in the
    import machinery's callbacks, which print it as a traceback and go on."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def main() -> int:
    """The command line; a Ctrl-C while it loads (numpy, torch: a second or more) is said in one line, as later."""
    try:
        with _ctrl_c_held():
            from flairseg.cli import main as command_line
    except KeyboardInterrupt:
        print("flairseg: interrupted; nothing was written", file=sys.stderr)
        return 130
    return command_line()


if __name__ == "__main__":
    sys.exit(main())
