"""The self-contained HTML report built from run directories."""
