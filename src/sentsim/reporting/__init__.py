"""The report stage: a finished run folder becomes plots, report.html, report.md and a model card."""

from sentsim.reporting.model_card import render_model_card
from sentsim.reporting.plots import plot_learning_curve, plot_scatter
from sentsim.reporting.report import RunFolderError, write_report

__all__ = ["RunFolderError", "plot_learning_curve", "plot_scatter", "render_model_card", "write_report"]
