"""The paper's facts and figures: parameter and multiply-add counts, degradation (Fig. 6), layer responses (Fig. 7)."""
