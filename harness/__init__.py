"""restorebench's core: registries, interfaces, runner, metrics, tracking, assets, CLI.

Nothing here names a concrete restorer or task; they plug in through the registries.
"""

from harness.restorer import RESTORERS, Restorer, RestorerInfo, build_restorer, register_restorer
from harness.task import TASKS, DataMissingError, MetricConventions, Sample, Task, build_task, register_task

__all__ = ["RESTORERS", "Restorer", "RestorerInfo", "build_restorer", "register_restorer",
           "TASKS", "DataMissingError", "MetricConventions", "Sample", "Task", "build_task",
           "register_task"]
