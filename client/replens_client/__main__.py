import sys

from replens_client.cli import main

sys.exit(main())
