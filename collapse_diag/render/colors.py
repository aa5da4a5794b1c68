"""One colour per per-dimension status, shared by every plot, table and document.

Okabe-Ito colours (colour-blind safe). A plain mapping, no plotting import: the
HTML writer reads it without loading matplotlib.
"""

from __future__ import annotations

__all__ = ["MI_COLOR", "MKL_COLOR", "NEUTRAL", "STATUS_COLORS"]

#: One colour per status, the same in every plot and table (Okabe-Ito, colour-blind safe).
STATUS_COLORS = {
    "used": "#009E73",
    "undetermined": "#CC79A7",
    "ignored": "#0072B2",
    "uninformative": "#E69F00",
    "collapsed": "#D55E00",
    "unknown": "#999999",
}
#: Mutual information, marginal KL, and neutral (lines, histograms).
MI_COLOR, MKL_COLOR, NEUTRAL = "#332288", "#DDCC77", "#555555"
