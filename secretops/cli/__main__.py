import sys

from secretops.cli import main

sys.exit(main())
