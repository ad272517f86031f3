# python -m loopscope run ... / upload ...: see loopscope.cli.
import sys

from .cli import main

sys.exit(main())
