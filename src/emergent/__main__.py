"""`python -m emergent ...`: the `emergent` command, as launchers start it
(`accelerate launch -m emergent train ...`, `torchrun -m emergent train ...`). The package's
entry point, not library code: it is the one module outside emergent.cli that imports it."""
import sys

from emergent.cli import main

if __name__ == "__main__":
    sys.exit(main())
