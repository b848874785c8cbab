"""`python -m syncd.sandbox --port N ...`: the same command as `syncd sandbox`."""

import typer

from syncd.sandbox.command import sandbox

typer.run(sandbox)
