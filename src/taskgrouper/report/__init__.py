"""Reports: ``results.json`` rendered as ``report.md`` and a self-contained ``report.html``.

Tables 1, 2 and 4 and Figures 2, 4 and 5 of Standley et al. (2020), compute beside quality,
and the candidate networks. No torch; matplotlib is imported only while drawing.
"""

from taskgrouper.report.writer import ResultsFileError, load_and_write, write_report

__all__ = ["ResultsFileError", "load_and_write", "write_report"]
