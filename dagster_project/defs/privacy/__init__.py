"""Privacy assets: the retention of event and decision data."""
