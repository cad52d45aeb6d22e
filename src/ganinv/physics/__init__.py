"""Forward operators for restoration with a GAN prior: thin constructors over ``deepinv.physics``
(:mod:`.tasks`), the Fourier phase-retrieval operator deepinv lacks (:mod:`.phase`) and the
classical baselines restorations are compared with (:mod:`.baselines`).

deepinv is imported only when a task is built (``import deepinv`` takes seconds).
"""

from ganinv.physics.tasks import TASK_NAMES, Task, custom_task, make_task, task_options

__all__ = ["TASK_NAMES", "Task", "custom_task", "make_task", "task_options"]
