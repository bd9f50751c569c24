"""The `mmpid` command line: thin commands that only call the library."""

from __future__ import annotations

import typer

app = typer.Typer(help="mmpid: what a vision-language model uses, in bits.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """mmpid: Partial Information Decomposition of vision-language models."""
