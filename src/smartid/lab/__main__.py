import sys

from smartid.lab.cli import main

sys.exit(main())
