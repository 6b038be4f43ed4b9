"""Entry point of a backtest from the dashboard (``retrain_prefect.flows.backtest``)."""

from retrain_prefect.flows.backtest import backtest

__all__ = ["backtest"]

if __name__ == "__main__":
    backtest()
