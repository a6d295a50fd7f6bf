import sys

from adapterzoo.cli import main

sys.exit(main())
