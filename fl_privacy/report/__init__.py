"""Reports over a run or a Hydra multirun directory: a CSV table, plots and one self-contained HTML page."""

from fl_privacy.report.build import Report, build_report
from fl_privacy.report.jobs import Job, find_jobs

__all__ = ["Job", "Report", "build_report", "find_jobs"]
