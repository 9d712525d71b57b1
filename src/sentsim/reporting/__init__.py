"""The report stage: a finished run folder becomes plots, report.html, report.md and a model card."""

from sentsim.lazy import lazy_exports

_EXPORTS = {
    "render_model_card": "sentsim.reporting.model_card",
    "plot_learning_curve": "sentsim.reporting.plots",
    "plot_scatter": "sentsim.reporting.plots",
    "RunFolderError": "sentsim.reporting.summary",
    "RunSummary": "sentsim.reporting.summary",
    "write_report": "sentsim.reporting.report",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
