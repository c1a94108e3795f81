"""The files of a study folder, by name: what run_study writes and what `hf-transfer publish STUDY` takes.

A leaf module (it imports nothing), so that publish can name a study's files without importing the study engine,
which imports the classify run that publishes.
"""

STUDY_CONFIG = "study.yaml"  # the study's config as run (a rerun refuses a changed one)
JOBS_FILE = "jobs.json"  # rerun bookkeeping
BASELINES_FILE = "baselines.json"
CARD_FILE = "README.md"
RESULTS_FILE = "results.jsonl"  # one row per run and evaluation set
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
# What `hf-transfer publish STUDY` puts in the repo, with the plots (*.png): the card and the tables, not the runs
# (each is published on its own) nor jobs.json
PUBLISHED_FILES = (CARD_FILE, STUDY_CONFIG, BASELINES_FILE, RESULTS_FILE, SUMMARY_CSV, SUMMARY_MD)
