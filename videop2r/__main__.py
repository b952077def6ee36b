import sys

from videop2r.cli import main

sys.exit(main())
