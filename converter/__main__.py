"""`python -m converter ...` is `docmill convert ...`: the converter job's own entry point,
for images that run it without the rest of the CLI in mind."""

import sys

from docmill.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
