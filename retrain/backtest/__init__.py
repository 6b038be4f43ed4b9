"""Backtesting a retraining policy: replay the feature store period by period and compare
what each policy would have served (``replay``), as tables and a page (``report``)."""
