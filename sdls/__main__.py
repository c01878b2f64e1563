import sys

from sdls.cli import main

sys.exit(main())
