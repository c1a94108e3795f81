"""The transfer study: arms (strategies, zero-shot methods) x training sizes x seeds x evaluation sets, with
baselines, plots, a study card and a recommendation per regime.

    python recipes/compare.py                       # the default study (recipes/configs/compare.yaml)
    python recipes/compare.py --quick               # a first look: 2 small sizes, 1 seed, 3 arms
    python recipes/compare.py executor.kind=ray     # the same runs on a Ray cluster (pip install ...[ray])

Rerunning skips finished runs, so a killed study resumes. `--help` lists every key.
"""

from pathlib import Path

from hf_transfer.cli import run_recipe

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "compare.yaml"


def main(argv=None):
    run_recipe("compare", DEFAULT_CONFIG, argv, description=__doc__)


if __name__ == "__main__":
    main()
