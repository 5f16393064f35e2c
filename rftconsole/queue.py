"""Queue Celery tasks by their registered name, once the current transaction commits.

Code that queues a task need not import the module that defines it: task modules import the code
they run (actions, the engine, the registry), so importing them back would close a cycle. Each
task's name is fixed in its `@shared_task(name=...)`.
"""

from django.db import transaction

from rftconsole.celery import DEFAULT_QUEUE, app


def queue_on_commit(task_name: str, *args: object, queue: str = DEFAULT_QUEUE) -> None:
    """Send `task_name(*args)` to `queue` after commit (at once when no transaction is open), so
    a worker never looks for a row that is not saved yet."""
    transaction.on_commit(lambda: app.send_task(task_name, args=list(args), queue=queue))
