"""Mean-field signal propagation (Poole et al. 2016; Schoenholz et al. 2017; Xiao et al. 2018). numpy only."""
