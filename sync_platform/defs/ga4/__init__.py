"""Google Analytics 4: daily-partitioned reports, lookback re-pulls, completeness and freshness."""
