"""Random-matrix theory of gradient-descent learning curves (Liao & Couillet 2018). numpy only."""
