"""Write docs/cli.md from the `--help` of every `lmp-gnn` command (tests/test_cli.py checks it is current).

    python scripts/cli_reference.py            # rewrite docs/cli.md
"""

import contextlib
import io
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def help_text(argv: list[str]) -> str:
    from lmp_gnn.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        main(argv + ["--help"])
    return buf.getvalue().rstrip()


def reference() -> str:
    import os

    os.environ["COLUMNS"] = "100"      # argparse wraps to the terminal: fix it for a stable file
    from lmp_gnn.cli import COMMANDS

    parts = ["# `lmp-gnn` command reference", "",
             "Generated from the `--help` of every command by `python scripts/cli_reference.py`;",
             "`tests/test_cli.py` fails when this file and the commands disagree.", "",
             "```", help_text([]), "```", ""]
    for name in COMMANDS:
        parts += [f"## lmp-gnn {name}", "", "```", help_text([name]), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    DOC.write_text(reference())
    print(f"wrote {DOC}", file=sys.stderr)
