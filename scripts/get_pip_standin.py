"""Offline stand-in for the get-pip.py script that ansible-test downloads.

ansible-test bootstraps pip in each sanity test's venv with a script it fetches from the internet, which
is not reachable here. scripts/setup installs this file at the cache path ansible-test reads first
(~/.ansible/test/cache/get_pip_<version>.py). It runs ensurepip, then installs whatever it was asked for.
"""

import os
import subprocess
import sys


def main():
    import ensurepip

    ensurepip.bootstrap(upgrade=True)
    # ensurepip sets PIP_CONFIG_FILE=/dev/null, which hides the machine's pip.conf (index, CA bundle).
    os.environ.pop("PIP_CONFIG_FILE", None)
    args = [a for a in sys.argv[1:] if not a.startswith("--no-")] or []
    if args:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + args)


if __name__ == "__main__":
    main()
