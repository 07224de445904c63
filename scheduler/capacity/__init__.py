"""Estate capacity studies for ICB planners (docs/capacity.md)."""
