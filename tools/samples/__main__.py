"""``python -m tools.samples [--out DIR]``: write the sample records (see ``tools.samples``)."""

from tools.samples.build import main

main()
