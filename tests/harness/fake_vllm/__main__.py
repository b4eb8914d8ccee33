import sys

from tests.harness.fake_vllm.cli import main

sys.exit(main())
