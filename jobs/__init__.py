"""Jobs: the app's core lives here (models, Celery tasks, the job page's websocket, the state
changes in actions.py, the live events in events.py, what the job pages show in summary.py, and
the job pages and REST API); each other concern has its subpackage:

- `datasets/`  import, store, preview, split and measure training data
- `registry/`  register, inspect, load, export and merge models
- `wizard/`    the job creation wizard
- `training/`  pre-flight checks, hyperparameters and the GRPO engine a worker runs
- `starter/`   the starter model and demo tasks, built by our own code

Imports: rewards (models, scoring, types), rftconsole helpers; playground only for building a
dataset from invocation logs. Subpackages import the core's models, never its views.
"""
