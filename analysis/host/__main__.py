"""``python -m analysis.host <parent pid>``: the zygote (see :mod:`analysis.host`)."""

import sys

from analysis.host import zygote_main

zygote_main(int(sys.argv[1]))
