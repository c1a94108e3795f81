"""The transfer study (`hf-transfer compare`): which transfer, for this task and this compute, measured.

A study is a grid of ordinary runs, arms x training-set sizes x seeds (grid.py), checked before any training
(checks.py), run by an executor (executors.py: local, or Ray) through one callable per job (runner.py), and
reported as tables, plots, recommendations and a study card (report.py, plots.py, card.py); run_study (engine.py)
puts it together.
"""

from .engine import StudyResult, default_study_dir, run_study
from .executors import LocalExecutor, RayExecutor, make_executor
from .grid import Job, build_jobs, run_folder_name
from .report import Recommendation, difference_test, recommendations
from .runner import StudyRunner, is_finished

__all__ = ["Job", "LocalExecutor", "RayExecutor", "Recommendation", "StudyResult", "StudyRunner", "build_jobs",
           "default_study_dir", "difference_test", "is_finished", "make_executor", "recommendations",
           "run_folder_name", "run_study"]
