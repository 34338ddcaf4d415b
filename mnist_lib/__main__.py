import sys

from mnist_lib.cli import main

sys.exit(main())
