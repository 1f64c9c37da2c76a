"""Study orchestration: Optuna ask/tell, dispatch to Ray workers, the service's rows, exports.

controller.py answers the API; runner.py asks and tells trials; trials.py says how a trial ends.
"""
